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

from worker.training import direct as fast
from worker.training.diagnostics import layer_norms
from worker.training.loop import Trainer, TrainResult

Outcome = TrainResult | BaseException  # a member's end: its result, or why it stopped
# ATen's CPU bmm multiplies matrices with contraction x rows x columns under this in a plain loop,
# whose sums round otherwise than the BLAS mm a lone Linear runs (measured: a 4-16-3 MLP's outputs
# at batch 6 differ in the last bit; its history then drifts 1e-5 relative within 4 epochs).
BMM_BLAS_MIN = 400
# Layers _batched_forward runs itself: what vmap makes of them, without its 0.4 ms a step of
# wrapping and unwrapping (16 members of the 64-128-10 MLP: a quarter of the pack's step).
PLAIN = (nn.Linear, nn.Flatten, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Identity)


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
        self.shared = _shared_rows(trainers)
        self.plain = all(isinstance(m, PLAIN) for m in self.shape)
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
        batches = self._batches()
        losses = self._gradients(batches)
        norms = self._optimizer_steps()
        for k, i in enumerate(self.active):
            try:
                if self._after_update(i, losses[k], batches[k][0].shape[0], norms[k]):
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

    def _batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each active member's batch in its own order: one gather for all when they train on
        the same rows (no validation split of their own: the same tensors) at the same place."""
        ts = [self.trainers[i] for i in self.active]
        b = ts[0].batch
        if self.shared is None or any(t.order is None or t.batch != b for t in ts):
            return [t._batch(t.batch) for t in ts]
        lo, hi = b * ts[0].bs, (b + 1) * ts[0].bs
        idx = torch.stack([t.order[lo:hi] for t in ts])  # (members, batch)
        x, y = self.shared
        return list(zip(x[idx].unbind(0), y[idx].unbind(0)))

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
            xs = torch.stack(xbs)
            if self.plain:
                return _batched_forward(self.shape, params, xs).unbind(0)
            return vmap(self._forward)(params, xs).unbind(0)
        per_member = {n: p.unbind(0) for n, p in params.items()}
        return tuple(self._forward({n: ps[k] for n, ps in per_member.items()}, xb) for k, xb in enumerate(xbs))

    def _optimizer_steps(self) -> list[dict | None]:
        """Every active member's optimizer step on its gradients; returns each one's gradient norms
        at its epoch's last batch (the epoch point's, read before the step as Trainer.run_epoch does)."""
        norms, optimizers, steps, direct = [], [], [], True
        for k, i in enumerate(self.active):
            t = self.trainers[i]
            for name, p in self.named[i]:
                p.grad = self.grads[name][k]
            norms.append(layer_norms(t.model, of_grads=True) if t.batch == t.steps_per_epoch - 1 else None)
            optimizers.append(t.optimizer)
            steps.append(t.step_kind.optimizer_step)  # the lone run's own step function
            direct &= t.step_kind.optimizer_step != t.optimizer.step  # DIRECT_KERNELS on
        if direct:
            fast.update_together(optimizers, steps)  # the same fused calls, shared
        else:
            for step in steps:
                step()
        return norms

    def _after_update(self, i: int, loss: torch.Tensor, rows: int, grads: dict | None) -> bool:
        """Member i's step after its optimizer's, exactly as Trainer.run_epoch writes it; True
        when it was the member's last."""
        t = self.trainers[i]
        last_batch = t.steps_per_epoch - 1
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
    x = trainer.data.x_train
    if not isinstance(x, torch.Tensor):  # memory-mapped rows (worker/training/mapped.py): batch by batch
        return None
    if x.dim() != 2 and not isinstance(trainer.model[0], nn.Flatten):
        return None
    linears = [(m.in_features, m.out_features) for m in shape.modules() if isinstance(m, nn.Linear)]
    return max((-(-BMM_BLAS_MIN // (i * o)) for i, o in linears), default=1)


def _shared_rows(trainers: list[Trainer]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The training rows (x, y) when every member's are equal (read once: a member's are its own
    split and preprocessing, equal when no validation split draws from its seed), else None."""
    d = trainers[0].data
    if not all(isinstance(t.data.x_train, torch.Tensor) for t in trainers):
        return None  # memory-mapped rows: gathered by each member
    if d.teacher_train is not None or any(
            not (torch.equal(t.data.x_train, d.x_train) and torch.equal(t.data.y_train, d.y_train)
                 and t.bs == trainers[0].bs) for t in trainers[1:]):
        return None
    return d.x_train, d.y_train


def _batched_forward(shape: nn.Sequential, params: dict[str, torch.Tensor], xs: torch.Tensor) -> torch.Tensor:
    """vmap(functional_call)'s forward of a Sequential of PLAIN layers, written out: each Linear a
    batched matmul of (members, batch, in) by its stacked (members, out, in) weights plus the bias."""
    h = xs
    for i, layer in enumerate(shape):
        if isinstance(layer, nn.Linear):
            h = torch.matmul(h, params[f"{i}.weight"].transpose(1, 2))
            if layer.bias is not None:
                h = h + params[f"{i}.bias"].unsqueeze(1)
        elif isinstance(layer, nn.Flatten):
            h = h.flatten(layer.start_dim + 1, layer.end_dim if layer.end_dim < 0 else layer.end_dim + 1)
        else:
            h = layer(h)  # elementwise: the same kernel whatever the leading dims
    return h
