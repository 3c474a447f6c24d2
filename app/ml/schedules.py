"""The learning-rate schedule spec and its builder: the spec -> PyTorch's lr_scheduler objects.

Per epoch: constant, step, multistep, exponential, cosine (and its warm restarts),
reduce_on_plateau (after validation, on the monitored loss). Per batch: one_cycle.
A linear ``warmup`` of N epochs can precede any per-epoch schedule: it is
``LinearLR(start_factor, total_iters=N)`` joined to the schedule with ``SequentialLR``.
worker/training/schedule.py steps them as PyTorch's conventions say.
"""
from typing import Annotated, Literal, NamedTuple, Union

from pydantic import Field, PositiveInt, model_validator
from torch.optim import Optimizer, lr_scheduler

from app.ml.strict import StrictModel

Fraction = Annotated[float, Field(gt=0, le=1)]


class Warmup(StrictModel):
    epochs: PositiveInt
    # The first epoch trains at lr * start_factor, rising linearly to lr.
    start_factor: Annotated[float, Field(gt=0, le=1)] = 0.1


class _Base(StrictModel):
    warmup: Warmup | None = None


class Constant(_Base):
    type: Literal["constant"]


class Step(_Base):
    type: Literal["step"]
    step_size: PositiveInt  # epochs between decays
    gamma: Fraction = 0.1


class MultiStep(_Base):
    type: Literal["multistep"]
    milestones: list[PositiveInt] = Field(min_length=1)
    gamma: Fraction = 0.1

    @model_validator(mode="after")
    def _increasing(self):
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError("milestones must be strictly increasing")
        return self


class Exponential(_Base):
    type: Literal["exponential"]
    gamma: Fraction


class Cosine(_Base):
    type: Literal["cosine"]
    t_max: PositiveInt | None = None  # epochs of one half cosine; default: the epochs after warmup
    eta_min: Annotated[float, Field(ge=0)] = 0.0
    # Warm restarts (SGDR): restart every restart_epochs, each period t_mult times longer.
    warm_restarts: bool = False
    restart_epochs: PositiveInt = 10
    t_mult: PositiveInt = 1


class ReduceOnPlateau(_Base):
    type: Literal["reduce_on_plateau"]
    # auto: the validation loss when there is a validation set, else the training loss.
    monitor: Literal["auto", "val_loss", "train_loss"] = "auto"
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.1
    patience: Annotated[int, Field(ge=0)] = 10
    threshold: Annotated[float, Field(ge=0)] = 1e-4
    threshold_mode: Literal["rel", "abs"] = "rel"
    cooldown: Annotated[int, Field(ge=0)] = 0
    min_lr: Annotated[float, Field(ge=0)] = 0.0


class OneCycle(_Base):
    type: Literal["one_cycle"]
    max_lr: Annotated[float, Field(gt=0)]
    pct_start: Annotated[float, Field(gt=0, lt=1)] = 0.3
    anneal_strategy: Literal["cos", "linear"] = "cos"
    div_factor: Annotated[float, Field(gt=0)] = 25.0
    final_div_factor: Annotated[float, Field(gt=0)] = 1e4
    three_phase: bool = False
    cycle_momentum: bool = True


Schedule = Annotated[
    Union[Constant, Step, MultiStep, Exponential, Cosine, ReduceOnPlateau, OneCycle],
    Field(discriminator="type"),
]

PER_BATCH = ("one_cycle",)


def plateau_monitor(schedule: ReduceOnPlateau, has_validation: bool) -> str:
    """The loss reduce_on_plateau watches: auto is val_loss with a validation set, else train_loss."""
    if schedule.monitor == "auto":
        return "val_loss" if has_validation else "train_loss"
    return schedule.monitor


def _main(s, opt: Optimizer, epochs: int, steps_per_epoch: int):
    after_warmup = epochs - (s.warmup.epochs if s.warmup else 0)
    match s.type:
        case "constant":
            return None
        case "step":
            return lr_scheduler.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
        case "multistep":
            return lr_scheduler.MultiStepLR(opt, milestones=s.milestones, gamma=s.gamma)
        case "exponential":
            return lr_scheduler.ExponentialLR(opt, gamma=s.gamma)
        case "cosine" if s.warm_restarts:
            return lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=s.restart_epochs, T_mult=s.t_mult,
                                                            eta_min=s.eta_min)
        case "cosine":
            return lr_scheduler.CosineAnnealingLR(opt, T_max=s.t_max or max(after_warmup, 1),
                                                  eta_min=s.eta_min)
        case "reduce_on_plateau":
            return lr_scheduler.ReduceLROnPlateau(
                opt, mode="min", factor=s.factor, patience=s.patience, threshold=s.threshold,
                threshold_mode=s.threshold_mode, cooldown=s.cooldown, min_lr=s.min_lr)
        case "one_cycle":
            return lr_scheduler.OneCycleLR(
                opt, max_lr=s.max_lr, epochs=epochs, steps_per_epoch=steps_per_epoch,
                pct_start=s.pct_start, anneal_strategy=s.anneal_strategy, div_factor=s.div_factor,
                final_div_factor=s.final_div_factor, three_phase=s.three_phase,
                cycle_momentum=s.cycle_momentum)
    raise ValueError(f"unknown schedule {s.type}")


class LRSchedulers(NamedTuple):
    """A schedule's PyTorch objects: the main one, a warm-up stepped on its own, and all of them."""

    main: object | None  # an LRScheduler, or ReduceLROnPlateau
    warmup: lr_scheduler.LinearLR | None  # stepped alone first: before plateau, or with no main schedule
    every: list  # each object built, a SequentialLR's parts too (a rollback scales their rates)


def build_schedule(s, opt: Optimizer, epochs: int, steps_per_epoch: int) -> LRSchedulers:
    """Build a schedule spec (or None: a constant rate) for the optimizer."""
    main = _main(s, opt, epochs, steps_per_epoch) if s else None
    every = [main] if main is not None else []
    warmup = None
    if s is not None and s.warmup:
        # Built after the main schedule, as SequentialLR expects; it resets lr to warm-up's start.
        warmup = lr_scheduler.LinearLR(opt, start_factor=s.warmup.start_factor, total_iters=s.warmup.epochs)
        every.append(warmup)
        if main is not None and s.type != "reduce_on_plateau":
            main = lr_scheduler.SequentialLR(opt, [warmup, main], milestones=[s.warmup.epochs])
            every.append(main)
            warmup = None
    return LRSchedulers(main, warmup, every)
