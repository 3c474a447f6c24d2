"""Pre-flight check: will this spec train on this dataset? Runs before queueing."""
import math
from dataclasses import dataclass, field, replace

from app.ml import spec as S
from app.ml.conflicts import check_training
from app.ml.preprocessing import MAX_ONE_HOT_VALUES, one_hot_width
from app.ml.errors import SpecError
from app.ml.layers.rules import fmt
from app.ml.layers.sizes import Shape
from app.ml.optim.checks import check_method, method_bytes
from app.ml.losses import CLASS_LABEL_LOSSES
from app.ml.shapes import (BYTES_PER_PARAMETER, LayerReport, NetworkTrace, largest_layer, layer_count,
                           size_field, trace_network, walk)


@dataclass(frozen=True)
class DatasetInfo:
    rows: int
    feature_shape: Shape
    target_shape: Shape  # per row: () for one value or label, (k,) for k columns
    target_kind: str  # integer | float
    target_min: float
    target_max: float
    targets: str = "index"  # data.targets: index | one_hot (labels as one-hot float rows)
    # Rows of a separate validation dataset (data.validation_dataset); None: split by fraction.
    validation_rows: int | None = None


@dataclass(frozen=True)
class Limits:
    max_parameters: int
    max_epochs: int
    max_steps: int
    max_layers: int
    max_memory_bytes: int = 8 * 2**30


@dataclass
class Plan:
    layers: list[LayerReport]
    parameter_count: int
    output_shape: Shape
    train_rows: int
    validation_rows: int
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    warnings: list[str] = field(default_factory=list)
    flops_per_step: int = 0  # forward + backward of one batch
    memory_bytes: int = 0  # training memory estimate for one batch
    # The dataset's arrays against the worker's memory, and the path they take there
    # (app/datasets/data_path.py): "in_memory" or "memory_mapped", said in a sentence.
    data_bytes: int = 0
    data_path: str = "in_memory"
    data_note: str = ""


def one_hot_targets(loss: S.LossSpec, data: DatasetInfo) -> DatasetInfo:
    """The targets as the loss sees them with data.targets one_hot: rows of (classes,) floats in [0, 1]."""
    if data.target_kind != "integer" or data.target_shape != ():
        raise SpecError("data.targets", "one_hot needs one integer class label per row, but the targets are "
                        f"{data.target_kind} with shape {fmt(data.target_shape)}; use targets: index")
    if data.target_min < 0:
        raise SpecError("data.targets", f"one_hot needs class labels from 0 up, got {data.target_min:g}")
    if loss.type == "nll":
        raise SpecError("data.targets", "nll takes class indices only: use targets: index, or cross_entropy "
                        "(it takes one-hot and probability rows)")
    width = one_hot_width(data.target_max)
    if width * data.rows > MAX_ONE_HOT_VALUES:
        raise SpecError("data.targets", f"one_hot of {data.rows:,} rows over {width:,} classes is "
                        f"{width * data.rows:,} values, over the limit of {MAX_ONE_HOT_VALUES:,}")
    return replace(data, target_shape=(width,), target_kind="float", target_min=0.0, target_max=1.0)


def probability_rows(loss: S.LossSpec, data: DatasetInfo) -> bool:
    """Targets cross_entropy takes as class probabilities: a row of k values per sample (one-hot
    or soft labels; integer or float) against k outputs. nll takes class indices only."""
    return loss.type == "cross_entropy" and (len(data.target_shape) == 1 or data.targets == "one_hot")


def _columns(data: DatasetInfo) -> str:
    k = data.target_shape[0]
    if data.targets == "one_hot":
        return f"data.targets one_hot makes {k} columns (labels 0..{k - 1})"
    return f"the targets have {k} columns (one probability per class)"


def _check_probabilities(loss: S.LossSpec, out: Shape, data: DatasetInfo) -> None:
    """cross_entropy on (batch, k) probability rows: PyTorch needs k outputs, and reads each value
    as a class's probability, so a negative one is an error in the data."""
    k = data.target_shape[0]
    if len(out) != 1:
        raise SpecError("model.layers", f"cross_entropy needs output (batch, classes), got {fmt(out)}")
    if out[0] != k:
        other = "; or use targets: index, which takes any width above the largest label" \
            if data.targets == "one_hot" else ""
        raise SpecError("model.layers", f"{_columns(data)}, so cross_entropy needs {k} outputs, "
                        f"but the last layer gives {out[0]}{other}")
    if data.target_min < 0:
        raise SpecError("dataset", "cross_entropy reads each target row as class probabilities, which "
                        f"cannot be negative, but the targets go down to {data.target_min:g}")
    if loss.weight is not None and len(loss.weight) != k:
        raise SpecError("loss.weight", f"gives {len(loss.weight)} class weights for {k} classes")


def target_warnings(loss: S.LossSpec, data: DatasetInfo) -> list[str]:
    """Probability rows that do not sum to 1: PyTorch trains on them as given, so a warning.

    Told from the dataset's stored range alone (no pass over the rows): a value over 1 makes its
    row sum to more than 1; a largest value under 1/k makes every row sum to less."""
    if not probability_rows(loss, data) or data.targets == "one_hot":  # one-hot rows sum to 1
        return []
    k, top = data.target_shape[0], data.target_max
    if top > 1:
        return [f"target rows should sum to 1 (class probabilities), but a target is {top:g}, so its row "
                "sums to more than 1; cross_entropy trains on the rows as given"]
    if top * k < 1:
        return [f"target rows should sum to 1 (class probabilities), but the largest target is {top:g} "
                f"over {k} columns, so every row sums to less than 1; cross_entropy trains on the rows as given"]
    return []


def _not_indices(loss: S.LossSpec, data: DatasetInfo) -> str:
    """Why these targets are not class indices, and what to use instead."""
    if len(data.target_shape) == 1:  # rows of k values: one-hot or probabilities
        return (f"{loss.type} takes class indices (one integer label per row), but the targets are rows "
                f"of {data.target_shape[0]} values (one-hot or class probabilities); use cross_entropy "
                "for probability rows, or give index labels")
    return (f"{loss.type} needs one integer class label per row, but the targets are "
            f"{data.target_kind} with shape {fmt(data.target_shape)}; use mse or l1 for regression")


def check_targets(loss: S.LossSpec, out: Shape, data: DatasetInfo) -> None:
    """Raises SpecError when the loss cannot compare the model's output with the targets."""
    if data.targets == "one_hot":
        data = one_hot_targets(loss, data)
    if probability_rows(loss, data):
        return _check_probabilities(loss, out, data)
    if loss.type in CLASS_LABEL_LOSSES:
        if data.target_kind != "integer" or data.target_shape != ():
            raise SpecError("loss.type", _not_indices(loss, data))
        if len(out) != 1:
            raise SpecError("model.layers", f"{loss.type} needs output (batch, classes), got {fmt(out)}")
        if data.target_min < 0 or data.target_max >= out[0]:
            raise SpecError("model.layers", f"the labels run from {data.target_min:g} to {data.target_max:g}, "
                            f"so {loss.type} needs at least {int(data.target_max) + 1} outputs "
                            f"(labels must be in 0..outputs-1), but the last layer gives {out[0]}")
        if loss.weight is not None and len(loss.weight) != out[0]:
            raise SpecError("loss.weight", f"gives {len(loss.weight)} class weights for {out[0]} classes")
        return
    # Element-wise losses: one target value per output; a 1-D target is a column.
    want = data.target_shape or (1,)
    if out != want:
        raise SpecError("model.layers", f"{loss.type} compares output and target element by element: "
                        f"the model gives {fmt(out)} but the targets are {fmt(want)}")
    if loss.type == "bce_with_logits" and (data.target_min < 0 or data.target_max > 1):
        raise SpecError("loss.type", "bce_with_logits needs targets in [0, 1], got "
                        f"{data.target_min:g}..{data.target_max:g}")
    if loss.type == "bce_with_logits" and loss.pos_weight is not None and len(loss.pos_weight) != out[-1]:
        raise SpecError("loss.pos_weight", f"gives {len(loss.pos_weight)} weights for {out[-1]} outputs")


def _rows(t: S.TrainingSpec, data: DatasetInfo) -> tuple[int, int]:
    """(training rows, validation rows): a separate validation dataset, or a split by fraction."""
    if data.validation_rows is not None:
        return data.rows, data.validation_rows
    n_val = int(data.rows * t.validation_split)
    if t.validation_split > 0 and n_val == 0:
        raise SpecError("training.validation_split", f"{t.validation_split} of {data.rows} rows "
                        "leaves no validation rows")
    if data.rows - n_val < 1:
        raise SpecError("training.validation_split", "leaves no training rows")
    return data.rows - n_val, n_val


def _check_limits(spec: S.JobSpec, limits: Limits) -> None:
    count = layer_count(spec.model.layers)
    if count > limits.max_layers:
        raise SpecError("model.layers", f"{count:,} layers (a recurrent layer's num_layers counted each) "
                                        f"is over the limit of {limits.max_layers}")
    if spec.training.epochs > limits.max_epochs:
        raise SpecError("training.epochs", f"{spec.training.epochs} is over the limit of {limits.max_epochs}")


def _batch_size(t: S.TrainingSpec, n_train: int) -> int:
    return n_train if t.batch_size == "full" else min(t.batch_size, n_train)


def _check_batch_norm(spec: S.JobSpec, batch_size: int, n_train: int) -> None:
    # Before the trace: torch refuses batch norm over a batch of 1 in training mode.
    norms = {l.type for l in walk(spec.model.layers)} & {"batchnorm1d", "batchnorm2d"}
    if norms and (batch_size == 1 or n_train % batch_size == 1):
        raise SpecError("training.batch_size", f"{sorted(norms)[0]} needs at least 2 rows per batch, but "
                        f"batch_size {batch_size} over {n_train} training rows leaves a batch of 1; "
                        "pick another batch_size")


def _check_cost(spec: S.JobSpec, traced: NetworkTrace, limits: Limits, batch_size: int) -> int:
    """Raises SpecError when the network is over the parameter or memory limit; returns its parameters."""
    params = sum(r.parameters for r in traced.layers)
    if params > limits.max_parameters:
        count, path, layer = largest_layer(spec.model.layers, traced.layers)
        field = size_field(layer)
        raise SpecError(f"{path}.{field}" if field else path,
                        f"the model has {params:,} parameters, over the limit of {limits.max_parameters:,}"
                        f" ({count:,} of them in this {layer.type} layer, about "
                        f"{count * BYTES_PER_PARAMETER / 2**30:.1f} GiB to train); make it smaller")
    gib = traced.memory_bytes / 2**30
    if traced.memory_bytes > limits.max_memory_bytes:
        raise SpecError("training.batch_size", f"training needs about {gib:.1f} GiB "
                        f"(parameters, gradients, optimizer state and activations for batches of "
                        f"{batch_size}), over the limit of {limits.max_memory_bytes / 2**30:.1f} GiB; "
                        "use a smaller batch_size or model")
    return params


def _warnings(spec: S.JobSpec, n_train: int, n_val: int, batch_size: int) -> list[str]:
    t = spec.training
    warnings = check_training(spec, n_train=n_train, n_val=n_val, batch_size=batch_size)
    if t.batch_size != "full" and t.batch_size > n_train:
        warnings.append(f"training.batch_size {t.batch_size} exceeds the {n_train} training rows; "
                        f"each epoch is one full batch")
    return warnings


def plan_job(spec: S.JobSpec, data: DatasetInfo, limits: Limits) -> Plan:
    """Dry-runs the spec against the dataset's shapes and checks every limit."""
    t = spec.training
    _check_limits(spec, limits)
    n_train, n_val = _rows(t, data)
    bs = _batch_size(t, n_train)
    _check_batch_norm(spec, bs, n_train)
    traced = trace_network(spec.model, data.feature_shape, bs)  # the layers built once for both
    out = traced.layers[-1].output_shape
    check_targets(spec.loss, out, data)
    params = _check_cost(spec, traced, limits, bs)
    check_method(spec, traced.layers, n_train=n_train, batch_size=bs, parameters=params,
                 outputs_per_row=math.prod(out), max_memory_bytes=limits.max_memory_bytes)
    steps_per_epoch = math.ceil(n_train / bs)
    total = steps_per_epoch * t.epochs
    if total > limits.max_steps:
        raise SpecError("training.epochs", f"{t.epochs} epochs of {steps_per_epoch} steps is {total:,} steps, "
                        f"over the limit of {limits.max_steps:,}")
    return Plan(list(traced.layers), params, out, n_train, n_val, bs, steps_per_epoch, total,
                [*target_warnings(spec.loss, data), *_warnings(spec, n_train, n_val, bs)],
                flops_per_step=traced.flops_per_step,
                memory_bytes=traced.memory_bytes + method_bytes(spec, params, n_train * math.prod(out)))
