"""Pre-flight check: will this spec train on this dataset? Runs before queueing."""
import math
from dataclasses import dataclass, field

from app.ml import spec as S
from app.ml.errors import SpecError
from app.ml.shapes import LayerReport, dry_run

CLASSIFICATION_LOSSES = ("cross_entropy", "bce_with_logits")


@dataclass(frozen=True)
class DatasetInfo:
    rows: int
    feature_shape: tuple[int, ...]
    target_shape: tuple[int, ...]  # per row: () for one value or label, (k,) for k columns
    target_kind: str  # integer | float
    target_min: float
    target_max: float


@dataclass(frozen=True)
class Limits:
    max_parameters: int
    max_epochs: int
    max_steps: int
    max_layers: int


@dataclass
class Plan:
    layers: list[LayerReport]
    parameter_count: int
    output_shape: tuple[int, ...]
    train_rows: int
    validation_rows: int
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    warnings: list[str] = field(default_factory=list)


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(["batch", *map(str, shape)]) + ")"


def check_targets(loss: S.LossSpec, out: tuple[int, ...], data: DatasetInfo) -> None:
    """Raises SpecError when the loss cannot compare the model's output with the targets."""
    if loss.type == "cross_entropy":
        if data.target_kind != "integer" or data.target_shape != ():
            raise SpecError("loss.type", "cross_entropy needs one integer class label per row, "
                            f"but the targets are {data.target_kind} with shape {_fmt(data.target_shape)}; "
                            "use mse or l1 for regression")
        if len(out) != 1:
            raise SpecError("model.layers", f"cross_entropy needs output (batch, classes), got {_fmt(out)}")
        if data.target_min < 0 or data.target_max >= out[0]:
            raise SpecError("model.layers", f"the labels run from {data.target_min:g} to {data.target_max:g}, "
                            f"so cross_entropy needs at least {int(data.target_max) + 1} outputs "
                            f"(labels must be in 0..outputs-1), but the last layer gives {out[0]}")
        return
    # Element-wise losses: one target value per output; a 1-D target is a column.
    want = data.target_shape or (1,)
    if out != want:
        raise SpecError("model.layers", f"{loss.type} compares output and target element by element: "
                        f"the model gives {_fmt(out)} but the targets are {_fmt(want)}")
    if loss.type == "bce_with_logits" and (data.target_min < 0 or data.target_max > 1):
        raise SpecError("loss.type", "bce_with_logits needs targets in [0, 1], got "
                        f"{data.target_min:g}..{data.target_max:g}")


def plan_job(spec: S.JobSpec, data: DatasetInfo, limits: Limits) -> Plan:
    """Dry-runs the spec against the dataset's shapes and checks every limit."""
    t = spec.training
    if len(spec.model.layers) > limits.max_layers:
        raise SpecError("model.layers", f"{len(spec.model.layers)} layers is over the limit of {limits.max_layers}")
    if t.epochs > limits.max_epochs:
        raise SpecError("training.epochs", f"{t.epochs} is over the limit of {limits.max_epochs}")
    layers = dry_run(spec.model, data.feature_shape)
    out = layers[-1].output_shape
    check_targets(spec.loss, out, data)
    params = sum(r.parameters for r in layers)
    if params > limits.max_parameters:
        raise SpecError("model.layers", f"{params:,} parameters is over the limit of {limits.max_parameters:,}")

    n_val = int(data.rows * t.validation_split)
    n_train = data.rows - n_val
    if t.validation_split > 0 and n_val == 0:
        raise SpecError("training.validation_split", f"{t.validation_split} of {data.rows} rows "
                        "leaves no validation rows")
    if n_train < 1:
        raise SpecError("training.validation_split", "leaves no training rows")
    bs = n_train if t.batch_size == "full" else min(t.batch_size, n_train)
    steps_per_epoch = math.ceil(n_train / bs)
    total = steps_per_epoch * t.epochs
    if total > limits.max_steps:
        raise SpecError("training.epochs", f"{t.epochs} epochs of {steps_per_epoch} steps is {total:,} steps, "
                        f"over the limit of {limits.max_steps:,}")
    if any(l.type == "batchnorm1d" for l in spec.model.layers) and (bs == 1 or n_train % bs == 1):
        raise SpecError("training.batch_size", f"batchnorm1d needs at least 2 rows per batch, but batch_size "
                        f"{bs} over {n_train} training rows leaves a batch of 1; pick another batch_size")

    warnings = []
    if t.batch_size != "full" and t.batch_size > n_train:
        warnings.append(f"training.batch_size {t.batch_size} exceeds the {n_train} training rows; "
                        f"each epoch is one full batch")
    if spec.loss.type == "cross_entropy" and spec.model.layers[-1].type == "softmax":
        warnings.append("model.layers[-1] is softmax, but cross_entropy applies log-softmax itself; "
                        "drop the softmax layer to train on logits")
    return Plan(layers, params, out, n_train, n_val, bs, steps_per_epoch, total, warnings)
