"""training.precision on the worker: autocast for the forward pass and the loss, and for
fp16 a gradient scaler, so that small fp16 gradients do not flush to zero.

The weights, the gradients and the optimizer's state stay fp32: autocast only runs the
matrix products (and the ops PyTorch lists with them) in the lower precision.
"""
import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from app.ml.errors import SpecError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device) -> Callable[[], AbstractContextManager]:
    """What the forward pass and the loss run under: a no-op context in fp32."""
    dtype = DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16's loss scaler (its range underflows for small gradients); bf16 has fp32's range."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def require_gpu(precision: str, device: torch.device) -> None:
    """The worker's side of the CPU refusal: the pre-flight check refuses device cpu with
    bf16/fp16, but a job on "auto" can still end up on a CPU worker. It fails there,
    rather than train slower than fp32 or silently in fp32."""
    if precision != "fp32" and device.type != "cuda":
        raise SpecError("training.precision", f"{precision} needs a GPU, but the job was given to a "
                        f"{device.type} worker: on the CPU mixed precision is slower than fp32; "
                        "submit it with device cuda, or with precision fp32")
