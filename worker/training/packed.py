"""A pack: many members' Trainers stepped together, one batched forward and backward for all of them.

Each member is its own Trainer (worker/training/loop.py), built exactly as its lone run builds
it: its seeded model, data split and shuffle order, optimizer, schedule, metric points, flushes
and checkpoints. Only the gradient evaluation is shared: the members' parameters are stacked
(torch.func.stack_module_state) and each member's Parameters become views of its slice, the
forward runs once under torch.func.vmap over (member, batch), each member's loss is its lone
loss function on its slice of the outputs, and one backward of their sum gives every member
its own gradient (the members share no weights, so each slice of the stacked gradient is that
member's). Then each member's optimizer steps its views in place, as its lone run would.

On the CPU, a member's logits, loss and gradients are its lone run's bit for bit at the batch
sizes measured (docs/equivalence.md). A member that stops (cancelled, pruned, its lease lost),
diverges or fails leaves the pack with its outcome; the others go on.
"""
import copy
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from worker.training.diagnostics import layer_norms
from worker.training.loop import Trainer, TrainResult

Outcome = TrainResult | BaseException  # a member's end: its result, or why it stopped
# ATen's CPU bmm multiplies matrices with contraction x rows x columns under this in a plain loop,
# whose sums round otherwise than the BLAS mm a lone Linear runs (measured: a 4-16-3 MLP's outputs
# at batch 6 differ in the last bit; its history then drifts 1e-5 relative within 4 epochs).
BMM_BLAS_MIN = 400


class PackedTrainer:
    """Trains ``trainers`` (members of one pack: same model spec, data and batch size) together."""

    def __init__(self, trainers: list[Trainer], on_end: Callable[[int, Outcome], None] | None = None):
        self.trainers = trainers
        self.outcomes: dict[int, Outcome] = {}
        # Called as each member leaves, with its place in ``trainers``: its end is made at once
        # (a cancelled member must not wait for the pack's last step to say it is cancelled).
        self.on_end = on_end or (lambda i, outcome: None)
        # The members' shared architecture, without storage: functional_call swaps in each one's weights.
        self.shape = copy.deepcopy(trainers[0].model).to("meta")
        self.vmap_rows = _vmap_rows(trainers[0], self.shape)
        self.started = [0.0] * len(trainers)  # perf_counter at each member's last epoch-time mark
        self.named = [list(t.model.named_parameters()) for t in trainers]  # the Parameters stay these
        self.active: list[int] = []
        self.stacked: dict[str, torch.Tensor] = {}
        self.grads: dict[str, tuple[torch.Tensor, ...]] = {}  # this step's, by name: one per active member
        self._stack(list(range(len(trainers))))

    def _stack(self, active: list[int]) -> None:
        """Stacks the active members' weights; each member's Parameters become views of its slice."""
        self.active = active
        if not active:
            return
        models = [self.trainers[i].model for i in active]
        self.stacked, _ = stack_module_state(models)  # {name: (member, *shape)}, leaves
        for k, i in enumerate(active):
            for name, p in self.named[i]:
                p.data = self.stacked[name].data[k]

    def run(self) -> dict[int, Outcome]:
        """Trains every member to its end; returns each member's outcome by its place in ``trainers``."""
        for i, t in enumerate(self.trainers):
            t.model.train()
            self.started[i] = time.perf_counter()
        while self.active:
            self._step()
        return self.outcomes

    def _step(self) -> None:
        """One step of every active member: its batch, the shared gradients, then its own update."""
        self._end_resumed_epochs()
        for i in self.active:
            t = self.trainers[i]
            if t.batch == 0:
                t._start_epoch()  # its own permutation, from its own generator
                self.started[i] = time.perf_counter()
        if not self.active:
            return
        batches = [self.trainers[i]._batch(self.trainers[i].batch) for i in self.active]
        losses = self._gradients(batches)
        for k, i in enumerate(self.active):
            try:
                if self._update(i, k, losses[k], batches[k][0].shape[0]):
                    self.outcomes[i] = TrainResult(self.trainers[i].model.cpu(), self.trainers[i].epoch - 1)
            except Exception as exc:  # noqa: BLE001 - Stopped, Diverged, ...: this member's end alone
                self.outcomes[i] = exc
        self._leave([i for i in self.active if i in self.outcomes])

    def _end_resumed_epochs(self) -> None:
        """Members resumed from a checkpoint taken after an epoch's last step but before its end
        end that epoch first, as Trainer.run_epoch does."""
        for i in self.active:
            t = self.trainers[i]
            if t.batch < t.steps_per_epoch:
                continue
            try:
                t._end_epoch(None)
                if t.epoch > t.spec.training.epochs:
                    self.outcomes[i] = TrainResult(t.model.cpu(), t.epoch - 1)
            except Exception as exc:  # noqa: BLE001 - this member's end alone
                self.outcomes[i] = exc
        self._leave([i for i in self.active if i in self.outcomes])

    def _gradients(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """Every active member's data loss at its batch, with its gradient in its stacked slice.

        Members whose batches differ in shape (one is at its epoch's short last batch, after a
        resume from checkpoints at different steps) are forwarded in separate vmap calls."""
        groups: dict[tuple, list[int]] = {}
        for k, (xb, yb) in enumerate(batches):
            groups.setdefault((tuple(xb.shape), tuple(yb.shape)), []).append(k)
        for p in self.stacked.values():
            p.grad = None
        losses: list[torch.Tensor | None] = [None] * len(batches)
        for ks in groups.values():
            whole = len(ks) == len(batches)
            params = self.stacked if whole else {n: p[ks] for n, p in self.stacked.items()}
            for k, member_out in zip(ks, self._outputs(params, [batches[k][0] for k in ks])):
                # The member's own loss function on its slice: under vmap a mean reduction sums in
                # another order (measured: 1 ulp off the lone loss); outside it, the lone run's bits.
                losses[k] = self.trainers[self.active[k]].train_loss(member_out, batches[k][1])
        torch.stack(losses).sum().backward()
        self.grads = {name: p.grad.unbind(0) for name, p in self.stacked.items()}  # (shape) per member
        return [loss.detach() for loss in losses]

    def _forward(self, params: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
        return functional_call(self.shape, params, (xb,))

    def _outputs(self, params: dict[str, torch.Tensor], xbs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Each member's model outputs at its batch: one vmap'd forward where its kernels compute the
        lone run's bits, else member by member (a small model's short batch) with the lone kernels."""
        rows = xbs[0].shape[0]
        if self.vmap_rows is not None and rows >= self.vmap_rows:
            # (members, batch, *outputs), unbound once: an index per member would give each its own
            # backward node that fills a whole zero (members, batch, *outputs) gradient.
            return vmap(self._forward)(params, torch.stack(xbs)).unbind(0)
        per_member = {n: p.unbind(0) for n, p in params.items()}
        return tuple(self._forward({n: ps[k] for n, ps in per_member.items()}, xb) for k, xb in enumerate(xbs))

    def _update(self, i: int, k: int, loss: torch.Tensor, rows: int) -> bool:
        """Member i's step after its gradients, exactly as Trainer.run_epoch writes it; True
        when it was the member's last."""
        t = self.trainers[i]
        for name, p in self.named[i]:
            p.grad = self.grads[name][k]
        last_batch = t.steps_per_epoch - 1
        grads = layer_norms(t.model, of_grads=True) if t.batch == last_batch else None
        t.step_kind.optimizer_step()  # the lone run's own step function (direct or not)
        lr = t.scheduler.after_batch()
        t.batch, t.step = t.batch + 1, t.step + 1
        t.window.append((t.epoch, t.step, loss))
        t.epoch_loss += loss * rows
        if t.step % t.spec.training.log_every_steps == 0:
            t.pending.add_step(t.epoch, t.step, loss, lr)
        if time.monotonic() - t.last_flush >= t.hooks.flush_seconds:
            self._mark_time(i)
            t._flush()  # divergence check, points out, then the stop check (raises Stopped)
            if t.batch <= last_batch and time.monotonic() - t.last_checkpoint >= t.hooks.checkpoint_seconds:
                t._checkpoint()
        if t.batch > last_batch:
            self._mark_time(i)
            t._end_epoch(grads)  # early stopping is not packed: it never stops here
        return t.epoch > t.spec.training.epochs

    def _mark_time(self, i: int) -> None:
        now = time.perf_counter()
        self.trainers[i].epoch_seconds += now - self.started[i]
        self.started[i] = now

    def _leave(self, ended: list[int]) -> None:
        """The ended members leave the pack with weights of their own; the rest are stacked again."""
        if not ended:
            return
        for i in ended:
            for p in self.trainers[i].model.parameters():
                p.data = p.data.clone()
        self._stack([j for j in self.active if j not in ended])
        for i in ended:
            self.on_end(i, self.outcomes[i])


def _vmap_rows(trainer: Trainer, shape: nn.Module) -> int | None:
    """The batch rows from which vmap's forward computes a lone run's bits; a step with fewer
    forwards member by member. None: never (on the CPU a Linear over more than 2 dims is a
    matmul, not the lone addmm). On a GPU the CPU's rule does not apply: always vmap."""
    if trainer.device.type != "cpu":
        return 1
    if trainer.data.x_train.dim() != 2 and not isinstance(trainer.model[0], nn.Flatten):
        return None
    linears = [(m.in_features, m.out_features) for m in shape.modules() if isinstance(m, nn.Linear)]
    return max((-(-BMM_BLAS_MIN // (i * o)) for i, o in linears), default=1)
