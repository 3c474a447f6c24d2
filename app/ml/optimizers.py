"""Optimizer specs (PyTorch's options and defaults) and the builder."""
from typing import Annotated, Literal, Union

import torch
from pydantic import Field, NonNegativeInt, PositiveInt, ValidationInfo, field_validator

from app.ml.optim import conjugate_gradient, levenberg_marquardt, newton, scaled_conjugate_gradient
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


Positive = Annotated[float, Field(gt=0)]
Shrink = Annotated[float, Field(gt=0, lt=1)]
Grow = Annotated[float, Field(gt=1)]


class Newton(StrictModel):
    """Newton's method on the exact Hessian of the full-batch loss, damped (app/ml/optim/newton.py).
    Needs n² floats of memory for n parameters."""

    type: Literal["newton"]
    lr: Lr = 1.0  # the step's scale: 1 is the Newton step
    damping: Positive = 1e-3  # λ's first value in (H + λI); the rest as trainlm adapts mu
    damping_dec: Shrink = 0.1
    damping_inc: Grow = 10.0
    damping_max: Positive = 1e10
    line_search: Literal["backtracking"] | None = "backtracking"  # Armijo backtracking, then a larger λ
    c1: Shrink = 1e-4
    max_backtracks: NonNegativeInt = 10


class LevenbergMarquardt(StrictModel):
    """MATLAB's trainlm for the mse loss (app/ml/optim/levenberg_marquardt.py); its defaults."""

    type: Literal["levenberg_marquardt"]
    mu: Positive = 1e-3
    mu_dec: Shrink = 0.1
    mu_inc: Grow = 10.0
    mu_max: Positive = 1e10


class ConjugateGradient(StrictModel):
    """Nonlinear conjugate gradient with a strong-Wolfe line search (app/ml/optim/conjugate_gradient.py)."""

    type: Literal["conjugate_gradient"]
    lr: Lr = 1.0  # scales each line search's first trial step
    beta: Literal["fletcher_reeves", "polak_ribiere", "hestenes_stiefel"] = "polak_ribiere"
    restart: PositiveInt | None = None  # steps between restarts along -g; None: the number of parameters
    c1: Shrink = 1e-4  # sufficient decrease
    c2: Shrink = 0.1  # curvature (Nocedal & Wright's choice for CG)
    max_ls: PositiveInt = 25  # evaluations per line search
    tolerance_change: NonNeg = 1e-9

    @field_validator("c2")
    @classmethod
    def _c1_below_c2(cls, c2: float, info: ValidationInfo) -> float:
        if c2 <= info.data.get("c1", 0):
            raise ValueError(f"the strong Wolfe conditions need 0 < c1 < c2 < 1, got c1 {info.data['c1']}, c2 {c2}")
        return c2


class ScaledConjugateGradient(StrictModel):
    """Møller's scaled conjugate gradient (1993), MATLAB's trainscg: no line search
    (app/ml/optim/scaled_conjugate_gradient.py). Bounds and defaults are the paper's and trainscg's."""

    type: Literal["scaled_conjugate_gradient"]
    sigma: Annotated[float, Field(gt=0, le=1e-4)] = 5e-5  # the finite-difference step for the curvature
    lambda_1: Annotated[float, Field(gt=0, le=1e-6)] = 5e-7  # the first scale λ1 (trainscg's lambda)


Optimizer = Annotated[
    Union[SGD, Adam, AdamW, Adamax, NAdam, RAdam, RMSprop, Adagrad, Adadelta, Rprop, LBFGS, Newton,
          LevenbergMarquardt, ConjugateGradient, ScaledConjugateGradient],
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
    "newton": newton.Newton,
    "levenberg_marquardt": levenberg_marquardt.LevenbergMarquardt,
    "conjugate_gradient": conjugate_gradient.ConjugateGradient,
    "scaled_conjugate_gradient": scaled_conjugate_gradient.ScaledConjugateGradient,
}

# Full-batch methods that step from the exact derivatives of the whole loss (the training
# loop hands them the loss as a function of the weights: worker/training/step.py).
CURVATURE = ("newton", "levenberg_marquardt")
# Methods that need the one full-batch objective (line searches, curvature): refused with batches.
FULL_BATCH = (*CURVATURE, "conjugate_gradient", "scaled_conjugate_gradient")


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


