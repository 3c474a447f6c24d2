"""Pre-flight checks of settings that are valid alone but not together.

Each raises SpecError naming the field to change, or returns a warning: a setting
that will train, but probably not as the user meant.
"""
from app.ml import spec as S
from app.ml.errors import SpecError
from app.ml.loss_activation import check_loss_activation
from app.ml.losses import CLASS_LABEL_LOSSES
from app.ml.optimizers import FULL_BATCH
from app.ml.shapes import walk
from app.ml.regularization import early_stopping_monitor
from app.ml.schedules import plateau_monitor

# L-BFGS builds a curvature model of one objective; tiny shuffled batches keep changing it.
LBFGS_MIN_BATCH = 64


def _optimizer(spec: S.JobSpec, n_train: int, batch_size: int) -> list[str]:
    if spec.optimizer.type == "rprop" and batch_size < n_train:
        return [f"optimizer rprop is meant for full-batch training (\"batch_size\": \"full\"): it grows or shrinks "
                f"each weight's step by the sign of successive gradients, and the noise of {batch_size}-row batches "
                "flips those signs"]
    if spec.optimizer.type != "lbfgs":
        return []
    if batch_size < n_train and batch_size < LBFGS_MIN_BATCH:
        raise SpecError("training.batch_size", f"lbfgs needs full-batch training (\"full\") or large "
                        f"batches (at least {LBFGS_MIN_BATCH} rows); {batch_size} rows per step give "
                        "it a different objective at every step and its line search and curvature "
                        "estimates break down")
    if any(l.type == "dropout" for l in spec.model.layers):
        return ["optimizer lbfgs with dropout: each re-evaluation of the loss draws a new dropout "
                "mask, so the line search sees a noisy objective"]
    return []


# GradScaler.step refuses a closure: it would have to rescale every re-evaluation of the
# line search. bf16 needs no scaler, so L-BFGS trains in bf16.
FP16_LBFGS = ("fp16 cannot train with lbfgs: fp16 needs a gradient scaler, and the scaler cannot "
              "drive the line search's re-evaluations of the loss; use bf16 (no scaler) or fp32")


def _precision(spec: S.JobSpec) -> None:
    t = spec.training
    if t.precision == "fp32":
        return
    if t.device == "cpu":
        raise SpecError("training.precision", f"{t.precision} needs a GPU: on the CPU mixed precision "
                        "is slower than fp32; use device cuda or auto, or precision fp32")
    if t.precision == "fp16" and spec.optimizer.type == "lbfgs":
        raise SpecError("training.precision", FP16_LBFGS)


def _schedule(spec: S.JobSpec, n_val: int) -> list[str]:
    s, epochs = spec.schedule, spec.training.epochs
    if s is None:
        return []
    warnings = []
    if s.warmup is not None:
        if s.type == "one_cycle":
            raise SpecError("schedule.warmup", "one_cycle has its own warm-up phase (pct_start); "
                            "drop warmup")
        if s.warmup.epochs >= epochs:
            raise SpecError("schedule.warmup.epochs", f"a warm-up of {s.warmup.epochs} epochs leaves "
                            f"no epochs of the schedule in {epochs} epochs of training")
    if s.type == "reduce_on_plateau" and plateau_monitor(s, n_val > 0) == "val_loss" and not n_val:
        raise SpecError("schedule.monitor", "val_loss needs a validation set: set "
                        "training.validation_split, or monitor train_loss")
    if s.type == "multistep" and s.milestones[-1] > epochs:
        warnings.append(f"schedule.milestones: {[m for m in s.milestones if m > epochs]} lie beyond "
                        f"the {epochs} epochs and never apply")
    if s.type == "step" and s.step_size >= epochs:
        warnings.append(f"schedule.step_size {s.step_size} >= {epochs} epochs: the rate never decays")
    return warnings


def _regularization(spec: S.JobSpec, n_val: int) -> list[str]:
    reg = spec.regularization
    if reg.weight_clip is not None and reg.weight_clip.type == "clamp" and reg.weight_clip.min >= reg.weight_clip.max:
        raise SpecError("regularization.weight_clip.min", f"min {reg.weight_clip.min} must be below "
                        f"max {reg.weight_clip.max}")
    es = reg.early_stopping
    if es is None:
        return []
    monitor = early_stopping_monitor(es, n_val > 0)
    if monitor.startswith("val_") and not n_val:
        raise SpecError("regularization.early_stopping.monitor", f"{monitor} needs a validation set: "
                        "set training.validation_split, or monitor train_loss")
    if monitor == "val_accuracy" and spec.loss.type not in (*CLASS_LABEL_LOSSES, "bce_with_logits"):
        raise SpecError("regularization.early_stopping.monitor", f"val_accuracy is measured only for "
                        f"classification losses, not {spec.loss.type}")
    if es.patience >= spec.training.epochs:
        return [f"regularization.early_stopping.patience {es.patience} >= {spec.training.epochs} "
                "epochs: training can never stop early"]
    return []


# Under DistributedDataParallel each rank sees a part of every batch: what needs the whole batch in one
# process (line searches, curvature, batch statistics), or a random stream of its own, cannot equal it.
DEVICES_OPTIMIZERS = ("lbfgs", *FULL_BATCH)
DEVICES_LAYERS = {"batchnorm1d": "batch norm needs the whole batch's statistics (SyncBatchNorm would "
                                 "still round differently from one process)",
                  "batchnorm2d": "batch norm needs the whole batch's statistics (SyncBatchNorm would "
                                 "still round differently from one process)",
                  "dropout": "each rank would draw its own dropout masks, so the training could not equal "
                             "one process's, nor resume exactly from rank 0's checkpoint"}


def _devices(spec: S.JobSpec, batch_size: int) -> None:
    """training.devices > 1: refuses what data parallel training cannot make equal to one process."""
    n = spec.training.devices
    if n == 1:
        return
    if spec.optimizer.type in DEVICES_OPTIMIZERS:
        raise SpecError("training.devices", f"optimizer {spec.optimizer.type} needs the whole batch's "
                        f"objective in one process (line search or curvature); train it with devices 1")
    for layer in walk(spec.model.layers):
        kind = "dropout" if getattr(layer, "dropout", 0) else layer.type  # a recurrent layer's dropout too
        if kind in DEVICES_LAYERS:
            raise SpecError("training.devices", f"a {layer.type} layer cannot train on {n} devices: "
                            f"{DEVICES_LAYERS[kind]}; train it with devices 1")
    if getattr(spec.loss, "weight", None) is not None:
        raise SpecError("training.devices", f"loss.weight makes {spec.loss.type} a weighted mean over the "
                        "whole batch, which the ranks' shares cannot add up to; train it with devices 1")
    if batch_size < n:
        raise SpecError("training.devices", f"a batch of {batch_size} rows cannot be split across {n} devices; "
                        f"use a batch_size of at least {n}, or fewer devices")


def check_training(spec: S.JobSpec, *, n_train: int, n_val: int, batch_size: int) -> list[str]:
    """Raises SpecError for settings that cannot train together; returns warnings."""
    _precision(spec)
    _devices(spec, batch_size)
    return [*_optimizer(spec, n_train, batch_size), *_schedule(spec, n_val),
            *_regularization(spec, n_val), *check_loss_activation(spec)]
