"""Pre-flight of the full-batch methods: newton, levenberg_marquardt, conjugate_gradient and
scaled_conjugate_gradient. Each raises SpecError naming the field to change.

Memory: Newton holds the Hessian, n² floats for n parameters, and its float64 copy for the
Cholesky solve (12 bytes per entry); Levenberg-Marquardt the Jacobian of the residuals,
rows x outputs x n floats, in fp32 and float64 (12 bytes), and JᵀJ (n², 12 bytes as well).
"""
from app.ml import spec as S
from app.ml.errors import SpecError
from app.ml.optimizers import CURVATURE, FULL_BATCH

BYTES_PER_ENTRY = 12  # fp32 as computed, float64 for the solve

WHY_FULL = {
    "newton": "its Hessian and line search are of the one loss over every training row",
    "levenberg_marquardt": "its Jacobian and its accept-or-retry test are of the one loss over every training row",
    "conjugate_gradient": "its line search and conjugate directions assume one fixed objective",
    "scaled_conjugate_gradient": "its curvature estimates and step test assume one fixed objective",
}


def curvature_bytes(kind: str, parameters: int, residuals: int) -> int:
    """The memory of the method's matrices: Newton's Hessian, or LM's Jacobian and JᵀJ."""
    matrix = parameters * parameters
    if kind == "levenberg_marquardt":
        matrix += residuals * parameters
    return matrix * BYTES_PER_ENTRY


def method_bytes(spec: S.JobSpec, parameters: int, residuals: int) -> int:
    """What the optimizer's matrices add to training memory (0 for the methods without any)."""
    kind = spec.optimizer.type
    return curvature_bytes(kind, parameters, residuals) if kind in CURVATURE else 0


def _layers(layers, reports):
    for layer, report in zip(layers, reports):
        yield layer, report.path
        if report.layers:
            yield from _layers(layer.layers, report.layers)


def check_method(spec: S.JobSpec, reports, *, n_train: int, batch_size: int, parameters: int,
                 outputs_per_row: int, max_memory_bytes: int) -> None:
    kind = spec.optimizer.type
    if kind not in FULL_BATCH:
        return
    if batch_size < n_train:
        raise SpecError("training.batch_size", f"{kind} needs full-batch training (\"batch_size\": \"full\"): "
                        f"{WHY_FULL[kind]}, and batches of {batch_size} of the {n_train} rows change it at every step")
    if spec.training.precision != "fp32":
        raise SpecError("training.precision", f"{kind} trains in fp32: its steps compare losses and solve "
                        f"systems that {spec.training.precision} rounds too coarsely")
    if kind in ("levenberg_marquardt", "scaled_conjugate_gradient") and spec.schedule is not None:
        raise SpecError("schedule", f"{kind} chooses every step's length itself; a learning-rate schedule has "
                        "nothing to scale: remove schedule")
    if kind == "levenberg_marquardt":
        _levenberg_marquardt(spec)
    if kind in CURVATURE:
        _deterministic(spec, reports, kind)
        need = curvature_bytes(kind, parameters, n_train * outputs_per_row)
        if need > max_memory_bytes:
            what = (f"the Hessian of its {parameters:,} parameters ({parameters:,}² entries)" if kind == "newton" else
                    f"the Jacobian of {n_train:,} rows x {outputs_per_row:,} outputs by {parameters:,} parameters "
                    f"and its {parameters:,}² product")
            raise SpecError("optimizer.type", f"{kind} needs {what}: about {need / 2**30:.1f} GiB, over the limit "
                            f"of {max_memory_bytes / 2**30:.1f} GiB; use conjugate_gradient or "
                            "scaled_conjugate_gradient (memory in proportion to the parameters), lbfgs, or a "
                            "smaller model")


def _levenberg_marquardt(spec: S.JobSpec) -> None:
    if spec.loss.type != "mse":
        raise SpecError("loss.type", f"levenberg_marquardt fits a sum of squared errors, so it needs loss mse, "
                        f"not {spec.loss.type}; for {spec.loss.type} use newton or scaled_conjugate_gradient")
    reg = spec.regularization
    for name in ("l1", "l2"):
        if getattr(reg, name):
            raise SpecError(f"regularization.{name}", f"levenberg_marquardt minimizes the squared errors alone; "
                            f"an {name} penalty is not one of them: remove it, or use newton")


def _deterministic(spec: S.JobSpec, reports, kind: str) -> None:
    """Newton and LM evaluate one loss several times a step and differentiate it twice."""
    for layer, path in _layers(spec.model.layers, reports):
        if layer.type == "dropout" and layer.p > 0:
            raise SpecError(path, f"{kind} needs the same loss at every evaluation, and dropout draws a new "
                            "mask each time: remove it (or set p 0), or use conjugate_gradient or lbfgs")
        if layer.type in ("batchnorm1d", "batchnorm2d"):
            raise SpecError(path, f"{kind} differentiates the loss twice, and {layer.type} updates its running "
                            "statistics at every evaluation: use layernorm, or another optimizer")
    if spec.regularization.grad_clip is not None:
        raise SpecError("regularization.grad_clip", f"{kind} steps from the exact gradient and curvature, so "
                        "clipping the gradient does not apply; remove grad_clip (the damping keeps steps safe)")
