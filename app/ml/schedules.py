"""Learning-rate schedules, stepped as PyTorch's conventions say.

Per epoch: constant, step, multistep, exponential, cosine (and its warm restarts),
reduce_on_plateau (after validation, on the monitored loss). Per batch: one_cycle.
A linear ``warmup`` of N epochs can precede any per-epoch schedule: it is
``LinearLR(start_factor, total_iters=N)`` joined to the schedule with ``SequentialLR``.
"""
from typing import Annotated, Literal, Union

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


class Scheduler:
    """Steps a schedule at the points PyTorch's conventions give: per batch or per epoch."""

    def __init__(self, spec, opt: Optimizer, epochs: int, steps_per_epoch: int, has_validation: bool):
        self.spec, self.optimizer = spec, opt
        self.warmup_epochs = spec.warmup.epochs if spec and spec.warmup else 0
        self.plateau = spec is not None and spec.type == "reduce_on_plateau"
        self.per_batch = spec is not None and spec.type in PER_BATCH
        self.monitor = plateau_monitor(spec, has_validation) if self.plateau else None
        self.epochs_done = 0
        main = _main(spec, opt, epochs, steps_per_epoch) if spec else None
        self.warmup = None
        if self.warmup_epochs:
            # Built after the main schedule, as SequentialLR expects; it resets lr to warm-up's start.
            self.warmup = lr_scheduler.LinearLR(opt, start_factor=spec.warmup.start_factor,
                                                total_iters=self.warmup_epochs)
            if main is not None and not self.plateau:
                main = lr_scheduler.SequentialLR(opt, [self.warmup, main], milestones=[self.warmup_epochs])
                self.warmup = None
        self.main = main

    def after_batch(self) -> None:
        if self.per_batch:
            self.main.step()

    def after_epoch(self, metrics: dict[str, float]) -> None:
        self.epochs_done += 1
        if self.warmup is not None and self.epochs_done <= self.warmup_epochs:
            self.warmup.step()  # plateau (or constant) after warm-up: warm-up steps alone first
        elif self.plateau:
            self.main.step(metrics[self.monitor])
        elif self.main is not None and not self.per_batch:
            self.main.step()

    def state_dict(self) -> dict:
        return {"epochs_done": self.epochs_done,
                "main": self.main.state_dict() if self.main else None,
                "warmup": self.warmup.state_dict() if self.warmup else None}

    def load_state_dict(self, state: dict) -> None:
        self.epochs_done = state["epochs_done"]
        # A restored optimizer has stepped before; tell PyTorch's check that warns otherwise.
        self.optimizer._opt_called = True
        if self.main is not None:
            self.main.load_state_dict(state["main"])
        if self.warmup is not None:
            self.warmup.load_state_dict(state["warmup"])

    def scale(self, factor: float) -> None:
        """Scales the rate now and every rate the schedule will set later (a rollback's halving)."""
        for group in self.optimizer.param_groups:
            for key in ("lr", "initial_lr", "max_lr", "min_lr"):
                if key in group:
                    group[key] *= factor
        stack = [s for s in (self.main, self.warmup) if s is not None]
        while stack:
            s = stack.pop()
            stack.extend(getattr(s, "_schedulers", []))
            if hasattr(s, "base_lrs"):
                s.base_lrs = [lr * factor for lr in s.base_lrs]
            if hasattr(s, "_last_lr"):
                s._last_lr = [lr * factor for lr in s._last_lr]
