"""Optimizer specs (PyTorch's options and defaults) and the builder."""
from typing import Annotated, Literal, Union

import torch
from pydantic import Field, PositiveInt, ValidationInfo, field_validator

from app.ml.strict import StrictModel

Betas = tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]]
Lr = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]


class SGD(StrictModel):
    type: Literal["sgd"]
    lr: Lr = 1e-3
    momentum: NonNeg = 0.0
    dampening: NonNeg = 0.0
    nesterov: bool = False
    weight_decay: NonNeg = 0.0

    @field_validator("nesterov")
    @classmethod
    def _nesterov_needs_momentum(cls, nesterov: bool, info: ValidationInfo) -> bool:
        if nesterov and (info.data.get("momentum", 0) <= 0 or info.data.get("dampening", 0) != 0):
            raise ValueError("nesterov requires momentum > 0 and dampening = 0")
        return nesterov


class Adam(StrictModel):
    type: Literal["adam"]
    lr: Lr = 1e-3
    betas: Betas = (0.9, 0.999)
    eps: Annotated[float, Field(gt=0)] = 1e-8
    weight_decay: NonNeg = 0.0
    amsgrad: bool = False


class AdamW(StrictModel):
    type: Literal["adamw"]
    lr: Lr = 1e-3
    betas: Betas = (0.9, 0.999)
    eps: Annotated[float, Field(gt=0)] = 1e-8
    weight_decay: NonNeg = 1e-2
    amsgrad: bool = False


class RMSprop(StrictModel):
    type: Literal["rmsprop"]
    lr: Lr = 1e-2
    alpha: Annotated[float, Field(ge=0, lt=1)] = 0.99
    eps: Annotated[float, Field(gt=0)] = 1e-8
    weight_decay: NonNeg = 0.0
    momentum: NonNeg = 0.0
    centered: bool = False


class Adagrad(StrictModel):
    type: Literal["adagrad"]
    lr: Lr = 1e-2
    lr_decay: NonNeg = 0.0
    weight_decay: NonNeg = 0.0
    initial_accumulator_value: NonNeg = 0.0
    eps: Annotated[float, Field(gt=0)] = 1e-10


class Adadelta(StrictModel):
    type: Literal["adadelta"]
    lr: Lr = 1.0
    rho: Annotated[float, Field(ge=0, le=1)] = 0.9
    eps: Annotated[float, Field(gt=0)] = 1e-6
    weight_decay: NonNeg = 0.0


class Adamax(StrictModel):
    type: Literal["adamax"]
    lr: Lr = 2e-3
    betas: Betas = (0.9, 0.999)
    eps: Annotated[float, Field(gt=0)] = 1e-8
    weight_decay: NonNeg = 0.0


class NAdam(StrictModel):
    type: Literal["nadam"]
    lr: Lr = 2e-3
    betas: Betas = (0.9, 0.999)
    eps: Annotated[float, Field(gt=0)] = 1e-8
    weight_decay: NonNeg = 0.0
    momentum_decay: NonNeg = 4e-3
    decoupled_weight_decay: bool = False


class RAdam(StrictModel):
    type: Literal["radam"]
    lr: Lr = 1e-3
    betas: Betas = (0.9, 0.999)
    eps: Annotated[float, Field(gt=0)] = 1e-8
    weight_decay: NonNeg = 0.0
    decoupled_weight_decay: bool = False


class Rprop(StrictModel):
    """Resilient backpropagation (Riedmiller & Braun 1993): a step size per weight, grown while the
    gradient keeps its sign and shrunk when it flips; the gradient's size is not used. Meant for
    full-batch training."""

    type: Literal["rprop"]
    lr: Lr = 1e-2  # every weight's first step size
    # (eta_minus, eta_plus): 0 < eta_minus < 1 < eta_plus
    etas: tuple[Annotated[float, Field(gt=0, lt=1)], Annotated[float, Field(gt=1)]] = (0.5, 1.2)
    # (smallest, largest) step size
    step_sizes: tuple[NonNeg, Annotated[float, Field(gt=0)]] = (1e-6, 50.0)

    @field_validator("step_sizes")
    @classmethod
    def _ordered(cls, sizes: tuple[float, float]) -> tuple[float, float]:
        if sizes[0] > sizes[1]:
            raise ValueError(f"the smallest step size must not exceed the largest, got {list(sizes)}")
        return sizes


class LBFGS(StrictModel):
    """Quasi-Newton: each step re-evaluates the loss up to max_iter times on one fixed batch."""

    type: Literal["lbfgs"]
    lr: Lr = 1.0
    max_iter: PositiveInt = 20
    max_eval: PositiveInt | None = None
    tolerance_grad: NonNeg = 1e-7
    tolerance_change: NonNeg = 1e-9
    history_size: PositiveInt = 100
    line_search_fn: Literal["strong_wolfe"] | None = None


Optimizer = Annotated[
    Union[SGD, Adam, AdamW, Adamax, NAdam, RAdam, RMSprop, Adagrad, Adadelta, Rprop, LBFGS],
    Field(discriminator="type"),
]

OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adamax": torch.optim.Adamax,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
    "rprop": torch.optim.Rprop,
    "lbfgs": torch.optim.LBFGS,
}


# PyTorch's fastest implementation of each optimizer, on the CPU and on CUDA alike: one
# fused kernel where PyTorch has it, else the multi-tensor (foreach) path. PyTorch's
# default on the CPU is a loop over the parameters, several times slower per step for
# small models. docs/equivalence.md names these flags: a plain loop passes the same ones
# to compute the same bits (both can round differently from the per-tensor loop).
FUSED = {"sgd", "adam", "adamw", "adagrad"}
FOREACH = {"adamax", "nadam", "radam", "rmsprop", "adadelta", "rprop"}  # L-BFGS has neither


def implementation(type_: str) -> dict[str, bool]:
    """The implementation flags the engine passes to the optimizer class of ``type_``."""
    if type_ in FUSED:
        return {"fused": True}
    if type_ in FOREACH:
        return {"foreach": True}
    return {}


def build_optimizer(opt: Optimizer, params) -> torch.optim.Optimizer:
    """Builds the PyTorch optimizer with every option the spec gives."""
    options = opt.model_dump(exclude={"type"})
    for pair in ("betas", "etas", "step_sizes"):
        if pair in options:
            options[pair] = tuple(options[pair])
    return OPTIMIZER_CLASSES[opt.type](params, **options, **implementation(opt.type))


