"""The learning rates a job reports are the rates its steps used (issue 17): each step
point's ``lr``, and each epoch point's ``lr`` (its first batch's) with one_cycle's
``lr_last`` and ``lr_mean``; expected rates come from PyTorch's schedulers stepped here by
hand, from the closed formula, or from the optimizer itself at each step."""
import io

import numpy as np
import pytest
import torch
from torch import nn

from app.ml.spec import JobSpec
from tests.direct_modes import DIRECT
from worker.training import Hooks, Stopped, Trainer
from worker.training.checkpoint import restore_bytes, to_bytes
from worker.training.schedule import Scheduler

CPU = torch.device("cpu")
S = torch.optim.lr_scheduler
ROWS, BATCH, STEPS = 64, 16, 4  # 4 steps per epoch


def job(schedule: dict, epochs=5, lr=0.1, **training) -> JobSpec:
    return JobSpec.model_validate({
        "dataset": "ds_test", "loss": {"type": "mse"}, "schedule": schedule,
        "model": {"layers": [{"type": "linear", "out_features": 4}, {"type": "tanh"},
                             {"type": "linear", "out_features": 1}]},
        "optimizer": {"type": "sgd", "lr": lr},
        "training": {"epochs": epochs, "batch_size": BATCH, "log_every_steps": 1, **training}})


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, 3)).astype(np.float32)
    return x, (x @ np.array([1.0, -2.0, 0.5])).astype(np.float32)


def trained(spec: JobSpec, direct=True):
    """The epoch and step points, and the rate the optimizer held at each of its steps."""
    points, used = [], []
    x, y = data()
    trainer = Trainer(spec, x, y, CPU, Hooks(flush=lambda p, e, s: points.extend(p), flush_seconds=0),
                      direct=direct)
    trainer.optimizer.register_step_pre_hook(lambda opt, a, k: used.append(opt.param_groups[0]["lr"]))
    trainer.run()
    return ([p for p in points if p["kind"] == "epoch"], [p for p in points if p["kind"] == "step"], used)


def rates_by_hand(make, epochs, per_batch: bool, lr=0.1) -> list[float]:
    """The rate of each step, read before it, from a scheduler on a throwaway optimizer."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    sched, out = make(opt), []
    for _ in range(epochs):
        for _ in range(STEPS):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            if per_batch:
                sched.step()
        if not per_batch:
            sched.step()
    return out


def linear_one_cycle(max_lr, total, pct_start=0.3, div=25.0, final_div=1e4) -> np.ndarray:
    """OneCycleLR's linear rate at steps 0..total-1, from its formula (two phases)."""
    initial, end_up = max_lr / div, pct_start * total - 1
    low = initial / final_div
    i = np.arange(total, dtype=np.float64)
    up = initial + (max_lr - initial) * i / end_up
    down = max_lr + (low - max_lr) * (i - end_up) / (total - 1 - end_up)
    return np.where(i <= end_up, up, down)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("direct", DIRECT)
def test_one_cycle_reports_the_rates_its_batches_used(strategy, direct):
    epochs, pts = 5, job({"type": "one_cycle", "max_lr": 1.0, "anneal_strategy": strategy})
    want = rates_by_hand(lambda o: S.OneCycleLR(o, max_lr=1.0, epochs=epochs, steps_per_epoch=STEPS,
                                                anneal_strategy=strategy), epochs, per_batch=True)
    epoch_points, step_points, used = trained(pts, direct)
    assert used == pytest.approx(want, rel=1e-12)
    assert [p["lr"] for p in step_points] == pytest.approx(want, rel=1e-12)
    per_epoch = np.array(want).reshape(epochs, STEPS)
    assert [p["lr"] for p in epoch_points] == pytest.approx(per_epoch[:, 0], rel=1e-12)
    assert [p["lr_last"] for p in epoch_points] == pytest.approx(per_epoch[:, -1], rel=1e-12)
    assert [p["lr_mean"] for p in epoch_points] == pytest.approx(per_epoch.mean(axis=1), rel=1e-12)


@pytest.mark.parametrize("direct", DIRECT)
def test_one_cycle_linear_last_epoch_ends_at_the_floor_not_below_zero(direct):
    # The case: the reported rate was the next (nonexistent) step's, extrapolated past the end.
    epochs = 5
    epoch_points, step_points, used = trained(
        job({"type": "one_cycle", "max_lr": 0.8, "anneal_strategy": "linear"}, epochs), direct)
    want = linear_one_cycle(0.8, epochs * STEPS)
    assert used == pytest.approx(want, rel=1e-9)
    assert [p["lr"] for p in step_points] == pytest.approx(want, rel=1e-9)
    last = epoch_points[-1]
    assert last["lr_last"] == pytest.approx(0.8 / 25 / 1e4, rel=1e-9)  # initial / final_div_factor
    assert min(p["lr"] for p in step_points) > 0
    assert all(p[k] > 0 for p in epoch_points for k in ("lr", "lr_last", "lr_mean"))


@pytest.mark.parametrize("schedule, make", [
    ({"type": "step", "step_size": 2, "gamma": 0.5}, lambda o: S.StepLR(o, 2, 0.5)),
    ({"type": "multistep", "milestones": [1, 3], "gamma": 0.1}, lambda o: S.MultiStepLR(o, [1, 3], 0.1)),
    ({"type": "exponential", "gamma": 0.7}, lambda o: S.ExponentialLR(o, 0.7)),
    ({"type": "cosine", "eta_min": 0.01}, lambda o: S.CosineAnnealingLR(o, 5, 0.01)),
    ({"type": "exponential", "gamma": 0.5, "warmup": {"epochs": 2, "start_factor": 0.25}},
     lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.25, total_iters=2), S.ExponentialLR(o, 0.5)], [2])),
], ids=["step", "multistep", "exponential", "cosine", "warmup_exponential"])
@pytest.mark.parametrize("direct", DIRECT)
def test_per_epoch_schedules_report_the_rate_every_batch_of_the_epoch_used(schedule, make, direct):
    epoch_points, step_points, used = trained(job(schedule), direct)
    want = rates_by_hand(make, 5, per_batch=False)
    assert len(set(want)) > 1
    assert used == pytest.approx(want, rel=1e-12)
    assert [p["lr"] for p in step_points] == pytest.approx(want, rel=1e-12)
    assert [p["lr"] for p in epoch_points] == pytest.approx(want[::STEPS], rel=1e-12)
    assert not any("lr_last" in p or "lr_mean" in p for p in epoch_points)  # one rate an epoch


@pytest.mark.parametrize("direct", DIRECT)
def test_reduce_on_plateau_reports_the_rate_before_its_cut(direct):
    # A vanishing rate cannot improve the loss by the threshold: it is cut after each patience window.
    epoch_points, step_points, used = trained(
        job({"type": "reduce_on_plateau", "patience": 1, "factor": 0.5, "threshold": 0.5}, 6, lr=1e-6), direct)
    assert used == [p["lr"] for p in step_points]
    assert [p["lr"] for p in epoch_points] == used[::STEPS]
    assert epoch_points[0]["lr"] == 1e-6 and epoch_points[-1]["lr"] < 1e-6  # cut, and reported after


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_a_scaled_schedule_reports_the_scaled_rate_the_step_applied(strategy):
    # SGD on a parameter whose gradient is 1: each step moves it by exactly the rate it used.
    p = nn.Parameter(torch.zeros((), dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=0.1)
    # cycle_momentum off: OneCycleLR would give the SGD momentum, and a step would move by more.
    spec = job({"type": "one_cycle", "max_lr": 1.0, "anneal_strategy": strategy,
                "cycle_momentum": False}).schedule
    sched = Scheduler(spec, opt, epochs=3, steps_per_epoch=STEPS, has_validation=False)
    reference = rates_by_hand(lambda o: S.OneCycleLR(o, max_lr=1.0, epochs=3, steps_per_epoch=STEPS,
                                                     anneal_strategy=strategy, cycle_momentum=False),
                              3, per_batch=True)
    reported, moved = [], []
    for i in range(3 * STEPS):
        if i == 5:
            sched.scale(0.5)  # a rollback's halving, mid-schedule
        before = p.item()
        p.grad = torch.ones_like(p)
        opt.step()
        moved.append(before - p.item())
        reported.append(sched.after_batch())
    assert reported == pytest.approx(moved, rel=1e-9)
    want = [r * (0.5 if i >= 5 else 1.0) for i, r in enumerate(reference)]
    assert reported == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("direct", DIRECT)
def test_one_cycle_rates_resume_from_a_mid_epoch_checkpoint(direct):
    # A checkpoint inside an epoch carries the rates its first batches used: lr_mean stays whole.
    x, y = data()
    spec = job({"type": "one_cycle", "max_lr": 1.0}, epochs=3)
    full, saved = [], []
    hooks = Hooks(flush=lambda p, e, s: full.extend(p), flush_seconds=0, checkpoint_seconds=0,
                  checkpoint=lambda blob, step: saved.append((step, blob, len(full))))
    Trainer(spec, x, y, CPU, hooks, direct=direct).run()
    mid = [(step, blob, n) for step, blob, n in saved if step % STEPS]
    assert mid
    strip = lambda ps: [{k: v for k, v in p.items() if k not in ("epoch_seconds", "samples_per_second")}
                        for p in ps]
    for step, blob, flushed in mid:
        rest = []
        trainer = Trainer(spec, x, y, CPU, Hooks(flush=lambda p, e, s: rest.extend(p), flush_seconds=0),
                          direct=direct)
        assert restore_bytes(trainer, blob) == step
        trainer.run()
        assert strip(rest) == strip(full[flushed:]), step


def test_a_checkpoint_without_rates_reports_the_rates_of_the_epochs_remaining_batches():
    # Checkpoints written before the rates were kept have none: resuming one mid-epoch must
    # still train, and report the batches it ran.
    x, y = data()
    spec = job({"type": "one_cycle", "max_lr": 1.0}, epochs=2)
    calls = []
    trainer = Trainer(spec, x, y, CPU, Hooks(flush_seconds=0, should_stop=lambda: calls.append(1) or len(calls) == 2),
                      direct=False)
    with pytest.raises(Stopped):
        trainer.run()
    assert trainer.batch == 2 and trainer.scheduler.rates[3] == 2
    snap = torch.load(io.BytesIO(to_bytes(trainer)), weights_only=True)
    del snap["scheduler"]["rates"]
    buf = io.BytesIO()
    torch.save(snap, buf)
    points = []
    fresh = Trainer(spec, x, y, CPU, Hooks(flush=lambda p, e, s: points.extend(p), flush_seconds=0), direct=False)
    restore_bytes(fresh, buf.getvalue())
    fresh.run()
    steps = [p["lr"] for p in points if p["kind"] == "step"]
    first = next(p for p in points if p["kind"] == "epoch")
    assert first["epoch"] == 1 and first["lr"] == steps[0] and first["lr_last"] == steps[1]
    assert first["lr_mean"] == pytest.approx((steps[0] + steps[1]) / 2, rel=1e-12)


def test_the_apis_points_carry_the_rates_the_trainer_wrote():
    # The metrics page builds its points from the stored values: a rate the schema lacks is dropped.
    from app.jobs.schemas import EpochPoint, StepPoint

    epoch_points, step_points, used = trained(job({"type": "one_cycle", "max_lr": 1.0}, epochs=2))
    values = lambda p: {k: v for k, v in p.items() if k not in ("kind", "epoch", "step")}
    steps = [StepPoint(epoch=p["epoch"], step=p["step"], **values(p)) for p in step_points]
    assert [s.lr for s in steps] == used
    epochs = [EpochPoint(epoch=p["epoch"], step=p["step"], **values(p)) for p in epoch_points]
    assert [(e.lr, e.lr_last) for e in epochs] == [(used[0], used[STEPS - 1]), (used[STEPS], used[-1])]
    assert all(e.lr_mean is not None for e in epochs)
