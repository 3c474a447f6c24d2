"""The training loop: a Trainer, and run_epoch, which shows one epoch's every step in order.
It computes exactly what docs/equivalence.md's plain loop does.

Order of random draws, all from the job's seed:
1. ``torch.manual_seed(seed)``, then the model is built on the CPU in spec order;
2. a ``torch.Generator`` seeded with ``seed`` draws the validation split (only
   when validation_split > 0), then one permutation per epoch when shuffling;
3. dropout draws from the global generator, as in any PyTorch loop.
"""
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from app.config import get_settings
from app.ml import spec as S
from app.ml.build import build_loss, build_model, build_optimizer
from app.ml.distill import DistillationLoss
from app.ml.errors import DataError
from app.ml.warm_start import apply_init, trainable
from worker.training import checkpoint, precision, state
from worker.training.data import Arrays, Split, prepare_data
from worker.training.diagnostics import evaluate, layer_norms, norms
from worker.training.distributed import Ranks
from worker.training.divergence import Diverged, check_finite
from worker.training.points import Pending
from worker.training.regularization import EarlyStopper, Regularizer
from worker.training.schedule import Scheduler
from worker.training.sources import Sources
from worker.training.step import make_step


class Stopped(Exception):
    """Raised when the job's stop hook asks the loop to end early."""


def _no_rewind(step: int) -> None:
    pass


@dataclass
class Hooks:
    # Called with metric points (plain floats) and the progress reached.
    flush: Callable[[list[dict], int, int], None] = lambda points, epoch, step: None
    should_stop: Callable[[], bool] = lambda: False
    # A rollback drops every point recorded after this step.
    rewind: Callable[[int], None] = _no_rewind
    flush_seconds: float = 1.0
    # Flush at every epoch's end too (a pruned search's member: its pruner judges each epoch).
    flush_every_epoch: bool = False
    # Called with the serialized training state (worker/training/checkpoint.py) after every
    # checkpoint_every epochs and at least every checkpoint_seconds, points flushed first.
    checkpoint: Callable[[bytes, int], None] | None = None
    checkpoint_seconds: float = 300.0
    # Epoch checkpoints closer than this to the last one are skipped: many tiny epochs
    # must not spend their time writing checkpoints.
    checkpoint_min_gap: float = 0.0


def resolve_device(requested: str) -> torch.device:
    """The device a job trains on: cuda when asked for (or on auto with a GPU), else the CPU."""
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("the job asks for device cuda, but this worker has no GPU")
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class TrainResult:
    model: nn.Module  # on the CPU
    epochs_run: int
    stopped_early: bool = False
    best_epoch: int | None = None  # with early stopping: the epoch whose weights were kept


class Trainer:
    """One job's training, one step at a time, with every piece of its state on ``self``.

    ``direct`` takes the step's fast path (worker/training/direct.py); None reads
    Settings.direct_kernels. ``sources``: what init.from_job and distill.teacher bring
    (worker/training/sources.py). ``ranks``: train as one of training.devices data parallel
    ranks (worker/training/distributed.py; the fast path does not apply).
    """

    def __init__(self, spec: S.JobSpec, x: np.ndarray, y: np.ndarray, device: torch.device,
                 hooks: Hooks | None = None, validation: Arrays | None = None, *, direct: bool | None = None,
                 sources: Sources | None = None, ranks: Ranks | None = None):
        self.spec, self.hooks, self.device, self.ranks = spec, hooks or Hooks(), device, ranks
        sources = sources or Sources()
        t = spec.training
        torch.manual_seed(t.seed)
        self.gen = torch.Generator().manual_seed(t.seed)
        model = build_model(spec.model, x.shape[1:])
        if spec.init is not None:  # after the seeded build: the layers not copied start as a cold start's
            if sources.init_state is None:
                raise DataError("init.from_job", f"{spec.init.from_job}'s weights were not loaded")
            apply_init(model, spec.init, sources.init_state)
        self.model = model.to(device)
        self.loss_fn = build_loss(spec.loss).to(device)  # the spec's loss: validation's, and distill's hard term
        self.optimizer = build_optimizer(spec.optimizer, trainable(self.model))  # init.freeze: not these
        teacher = None
        if spec.distill is not None:
            if sources.teacher is None:
                raise DataError("distill.teacher", f"{spec.distill.teacher}'s weights were not loaded")
            teacher = lambda rows: sources.teacher.outputs(rows, device)  # noqa: E731
        self.data: Split = prepare_data(spec, x, y, self.gen, device, validation, teacher=teacher)
        # What the steps minimize: the spec's loss, or with distill the teacher's term added.
        self.train_loss = self.loss_fn if spec.distill is None else DistillationLoss(self.loss_fn, spec.distill)
        self.n = len(self.data.x_train)
        self.bs = self.n if t.batch_size == "full" else min(t.batch_size, self.n)
        self.steps_per_epoch = math.ceil(self.n / self.bs)
        has_val = self.data.x_val is not None
        self.scheduler = Scheduler(spec.schedule, self.optimizer, t.epochs, self.steps_per_epoch, has_val)
        reg = spec.regularization
        self.regularizer = Regularizer(reg, self.model)
        self.stopper = EarlyStopper(reg.early_stopping, has_val) if reg.early_stopping else None
        # training.precision: autocast around the forward pass and the loss, and fp16's
        # gradient scaler, whose scale is training state (rollbacks and checkpoints keep it).
        self.autocast = precision.autocast(t.precision, device)
        self.scaler = precision.grad_scaler(t.precision, device)
        direct = get_settings().direct_kernels if direct is None else direct
        self.step_kind = make_step(self.model if ranks is None else ranks.wrap(self.model), self.train_loss,
                                   self.optimizer, self.scaler, direct=direct and ranks is None,
                                   penalty=self.regularizer.named_penalty)
        if ranks is not None:  # training.devices: this rank's chunk of each batch (worker/training/distributed.py)
            self.step_kind.forward = ranks.sharded(self.step_kind.forward)
        # Where the loop is: the next epoch and batch to run, steps done.
        self.epoch, self.batch, self.step = 1, 0, 0
        self.order: torch.Tensor | None = None
        self.epoch_loss = torch.zeros((), device=device)
        self.epoch_seconds = 0.0
        self.pending, self.window, self.last_flush = Pending(), [], time.monotonic()
        self.last_checkpoint = time.monotonic()
        self.rollbacks, self._tries_this_epoch = 0, 0
        # The starts of the last two epochs: a rollback goes to the latest, and a second
        # failure in a row to the one before (the latest may already hold exploding weights).
        self._starts: list[dict] = []

    # ---- the loop --------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train every remaining epoch (rolling back a divergence when the spec asks for it)."""
        epochs, stop = self.spec.training.epochs, False
        self.model.train()
        while self.epoch <= epochs and not stop:
            try:
                stop = self.run_epoch()
            except Diverged as exc:
                self._roll_back(exc)
        if self.stopper is not None:
            self.stopper.restore(self.model)
        last = self.epoch - 1
        return TrainResult(self.model.cpu(), last, stopped_early=last < epochs,
                           best_epoch=self.stopper.best_epoch if self.stopper else None)

    def run_epoch(self) -> bool:
        """Run the rest of the current epoch; True when early stopping ends training."""
        if self.batch == 0:
            self._start_epoch()  # the rollback point, then the epoch's permutation
        step_kind, reg, model = self.step_kind, self.regularizer, self.model
        last_batch, every = self.steps_per_epoch - 1, self.spec.training.log_every_steps
        grads: dict | None = None
        started = time.perf_counter()
        while self.batch <= last_batch:
            xb, yb = self._batch(self.batch)  # (batch, *features), (batch, ...)
            diagnose = self.batch == last_batch  # the epoch point's gradient norms

            def gradients() -> tuple[torch.Tensor, torch.Tensor]:
                """The loss and its gradients at the current weights (L-BFGS: many times a step)."""
                nonlocal grads
                step_kind.zero_grad()
                with self.autocast():  # training.precision: the forward pass and the loss only
                    loss = step_kind.forward(xb, yb)
                total = reg.add_penalty(loss)  # l1/l2, in fp32
                step_kind.backward(total)  # fp16: of the scaled loss
                step_kind.unscale()  # fp16: the true gradients from here on
                if diagnose:
                    grads = layer_norms(model, of_grads=True)  # before clipping
                reg.clip_gradients()
                return loss, total

            loss = step_kind.update(gradients, (xb, yb))  # the optimizer step (fp16: skipped on overflow)
            lr = self.scheduler.after_batch()  # the rate this step used; steps one_cycle
            reg.clip_weights()
            flush = time.monotonic() - self.last_flush >= self.hooks.flush_seconds
            if self.ranks is not None:  # the global batch's loss, and rank 0's flush decision: one all-reduce
                loss, flush = self.ranks.step_sum(loss, flush)
            self.batch, self.step = self.batch + 1, self.step + 1
            self.window.append((self.epoch, self.step, loss))  # checked for NaN/Inf at the flush
            self.epoch_loss += loss * xb.shape[0]
            if self.step % every == 0:
                self.pending.add_step(self.epoch, self.step, loss, lr)
            if flush:
                self.epoch_seconds += time.perf_counter() - started
                started = time.perf_counter()
                self._flush()  # divergence check, points out, then the cancel check
                # After the last batch the epoch's end comes first: it checkpoints when due.
                if self.batch <= last_batch and \
                        time.monotonic() - self.last_checkpoint >= self.hooks.checkpoint_seconds:
                    self._checkpoint()
        self.epoch_seconds += time.perf_counter() - started
        return self._end_epoch(grads)

    def _batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch b of the epoch, in the epoch's permutation when shuffling."""
        lo, hi, x, y = b * self.bs, (b + 1) * self.bs, self.data.x_train, self.data.y_train
        t = self.data.teacher_train  # distill: the targets are (the spec's, the teacher's outputs)
        if self.order is None:
            return x[lo:hi], (y[lo:hi] if t is None else (y[lo:hi], t[lo:hi]))
        idx = self.order[lo:hi]
        return x[idx], (y[idx] if t is None else (y[idx], t[idx]))

    def _start_epoch(self) -> None:
        if self.spec.training.on_divergence == "rollback" and not self._tries_this_epoch:
            self._starts = [*self._starts[-1:], state.capture(self)]  # before the permutation is drawn
        self.order = torch.randperm(self.n, generator=self.gen).to(self.device) \
            if self.spec.training.shuffle else None
        self.epoch_loss = torch.zeros((), device=self.device)
        self.epoch_seconds = 0.0

    def _end_epoch(self, grads: dict | None) -> bool:
        """The epoch's point, validation, the per-epoch schedule, early stopping, flush and checkpoint."""
        epochs = self.spec.training.epochs
        point = {"kind": "epoch", "epoch": self.epoch, "step": self.step,
                 "train_loss": self.epoch_loss / self.n, **self.scheduler.epoch_rates()}
        if self.data.x_val is not None:
            point.update(evaluate(self.model, self.loss_fn, self.data.x_val, self.data.y_val,
                                  self.spec.loss.type, self.autocast))
        point.update(norms(self.model, grads or {}))
        seconds = self.epoch_seconds
        point.update(epoch_seconds=seconds, samples_per_second=self.n / seconds if seconds > 0 else None)
        if self.rollbacks:
            point["rollbacks"] = self.rollbacks
        self.pending.points.append(point)
        self._guard()  # schedules and early stopping must not act on a diverged loss
        s = self.scheduler
        s.after_epoch({s.monitor: float(point[s.monitor])} if s.plateau else {})
        stop = self.stopper is not None and self.stopper.update(
            self.epoch, {self.stopper.monitor: float(point[self.stopper.monitor])}, self.model)
        if self.stopper is not None and (stop or self.epoch == epochs):
            # The job's latest metrics then say which epoch's weights it keeps.
            point.update(stopped_early=bool(stop and self.epoch < epochs), best_epoch=self.stopper.best_epoch)
        last = stop or self.epoch == epochs
        every = self.spec.training.checkpoint_every
        since = time.monotonic() - self.last_checkpoint
        due = since >= self.hooks.checkpoint_seconds or \
            (bool(every) and self.epoch % every == 0 and since >= self.hooks.checkpoint_min_gap)
        self.epoch, self.batch, self._tries_this_epoch = self.epoch + 1, 0, 0
        flush = last or due or self.hooks.flush_every_epoch or \
            time.monotonic() - self.last_flush >= self.hooks.flush_seconds
        if self._together(flush):  # every rank flushes (and may stop) at the same step
            self._flush()
        if due and not last:
            self._checkpoint()
        return stop

    def _checkpoint(self) -> None:
        """Hand the state to the checkpoint hook; every point up to now is already flushed."""
        if self.hooks.checkpoint is not None and not self.pending.points:
            self.hooks.checkpoint(checkpoint.to_bytes(self), self.step)
        self.last_checkpoint = time.monotonic()

    # ---- metrics, divergence and rollback -------------------------------------------------

    def _guard(self) -> None:
        """Stop at a non-finite loss, keeping (and writing) every point before it."""
        try:
            check_finite(self.window)
        except Diverged as exc:
            self.pending.drop_from(exc.step)
            if self.spec.training.on_divergence == "fail" or self.rollbacks >= self.spec.training.max_rollbacks:
                self.hooks.flush(self.pending.materialize(), exc.epoch, exc.step - 1)
            raise
        self.window = []

    def _flush(self) -> None:
        self._guard()
        self.hooks.flush(self.pending.materialize(), self.epoch if self.batch else self.epoch - 1, self.step)
        self.last_flush = time.monotonic()
        if self._together(self.hooks.should_stop()):
            raise Stopped()

    def _together(self, flag: bool) -> bool:
        """The flag; under training.devices rank 0's, on every rank (rank 0 alone asks the database)."""
        return flag if self.ranks is None else self.ranks.agree(flag)

    def _roll_back(self, exc: Diverged) -> None:
        """Go back to the start of the diverged epoch with half the learning rate, or re-raise."""
        t = self.spec.training
        if t.on_divergence == "fail" or self.rollbacks >= t.max_rollbacks or not self._starts:
            if t.on_divergence == "rollback":
                raise Diverged(exc.epoch, exc.step, exc.value,
                               f" ({self.rollbacks} rollbacks with halved learning rates did not help)") from exc
            raise exc
        self.rollbacks += 1
        self._tries_this_epoch += 1
        if self._tries_this_epoch > 1 and len(self._starts) > 1:
            self._starts.pop()  # the later start failed again: go one epoch further back
        tries = self._tries_this_epoch
        state.restore(self, self._starts[-1])
        self._tries_this_epoch = tries
        self.scheduler.scale(0.5 ** tries)
        self.pending.points, self.window = [], []
        self.hooks.rewind(self.step)


def train(spec: S.JobSpec, x: np.ndarray, y: np.ndarray, device: torch.device,
          hooks: Hooks | None = None, validation: Arrays | None = None, *, direct: bool | None = None,
          sources: Sources | None = None, ranks: Ranks | None = None) -> TrainResult:
    """Train the spec's model on (x, y); ``ranks``: as one of training.devices data parallel ranks."""
    return Trainer(spec, x, y, device, hooks, validation, direct=direct, sources=sources, ranks=ranks).run()
