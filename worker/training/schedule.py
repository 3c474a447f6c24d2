"""The schedule driver: steps a job's learning-rate schedule per batch or per epoch, as
PyTorch's conventions say, keeps its state for rollbacks and checkpoints, and says which
rate each batch and each epoch trained with."""
from torch.optim import Optimizer

from app.ml.schedules import PER_BATCH, build_schedule, plateau_monitor


class Scheduler:
    """Steps a schedule at the points PyTorch's conventions give: per batch or per epoch."""

    def __init__(self, spec, opt: Optimizer, epochs: int, steps_per_epoch: int, has_validation: bool):
        self.spec, self.optimizer = spec, opt
        self.warmup_epochs = spec.warmup.epochs if spec and spec.warmup else 0
        self.plateau = spec is not None and spec.type == "reduce_on_plateau"
        self.per_batch = spec is not None and spec.type in PER_BATCH
        self.monitor = plateau_monitor(spec, has_validation) if self.plateau else None
        self.epochs_done = 0
        self.main, self.warmup, self.every = build_schedule(spec, opt, epochs, steps_per_epoch)
        # The rates this epoch's batches used: the first, the last, their sum and count.
        self.rates: tuple[float, float, float, int] | None = None

    def after_batch(self) -> float:
        """Note the rate the batch just used, then step a per-batch schedule (one_cycle).

        Returns that rate. It is read here, after the optimizer's step and before the
        schedule's: the group's lr is then still the rate the step applied (scaled by any
        rollback, which writes the groups).
        """
        lr = self.optimizer.param_groups[0]["lr"]
        r = self.rates
        self.rates = (lr, lr, lr, 1) if r is None else (r[0], lr, r[2] + lr, r[3] + 1)
        if self.per_batch:
            self.main.step()
        return lr

    def epoch_rates(self) -> dict[str, float]:
        """The epoch point's rates: ``lr``, the rate of the epoch's first batch; a per-batch
        schedule adds ``lr_last`` (its last batch's) and ``lr_mean`` (over its batches).

        Per-epoch schedules change the rate only between epochs, so every batch used ``lr``.
        """
        first, last, total, count = self.rates
        out = {"lr": first}
        if self.per_batch:
            out.update(lr_last=last, lr_mean=total / count)
        return out

    def after_epoch(self, metrics: dict[str, float]) -> None:
        """Step a per-epoch schedule; reduce_on_plateau with its monitored loss."""
        self.epochs_done += 1
        self.rates = None  # the next epoch's batches start their own
        if self.warmup is not None and self.epochs_done <= self.warmup_epochs:
            self.warmup.step()  # plateau (or constant) after warm-up: warm-up steps alone first
        elif self.plateau:
            self.main.step(metrics[self.monitor])
        elif self.main is not None and not self.per_batch:
            self.main.step()

    def state_dict(self) -> dict:
        return {"epochs_done": self.epochs_done,
                "main": self.main.state_dict() if self.main else None,
                "warmup": self.warmup.state_dict() if self.warmup else None,
                "rates": self.rates}

    def load_state_dict(self, state: dict) -> None:
        self.epochs_done = state["epochs_done"]
        # A checkpoint written before the rates were kept: the epoch's later batches say them.
        self.rates = state.get("rates")
        if self.main is not None:
            self.main.load_state_dict(state["main"])
        if self.warmup is not None:
            self.warmup.load_state_dict(state["warmup"])

    def scale(self, factor: float) -> None:
        """Scale the rate now and every rate the schedule will set later (a rollback's halving).

        The loop reads the rate from the optimizer's groups; a scheduler's get_last_lr()
        catches up at its next step.
        """
        for group in self.optimizer.param_groups:
            for key in ("lr", "initial_lr", "max_lr", "min_lr"):
                if key in group:
                    group[key] *= factor
        for s in self.every:
            if hasattr(s, "base_lrs"):
                s.base_lrs = [lr * factor for lr in s.base_lrs]
