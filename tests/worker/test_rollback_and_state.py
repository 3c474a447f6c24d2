"""Rollback after divergence, and that a captured training state resumes exactly."""
import numpy as np
import pytest
import torch

from app.ml.spec import JobSpec
from tests.direct_modes import DIRECT
from worker.training import Diverged, Hooks, Stopped, Trainer, state, train

CPU = torch.device("cpu")


def data(n=64, scale=1.0):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(n, 3)) * scale).astype(np.float32)
    return x, (x @ np.array([1.0, -2.0, 0.5])).astype(np.float32)


def spec(lr: float, **training) -> JobSpec:
    return JobSpec.model_validate({
        "dataset": "ds_test", "loss": {"type": "mse"},
        "model": {"layers": [{"type": "linear", "out_features": 8}, {"type": "relu"},
                             {"type": "dropout", "p": 0.2}, {"type": "linear", "out_features": 1}]},
        "optimizer": {"type": "sgd", "lr": lr, "momentum": 0.9},
        "schedule": {"type": "step", "step_size": 2, "gamma": 0.5},
        "training": {"epochs": 6, "batch_size": 8, "log_every_steps": 1, **training}})


def collect(job, x, y):
    """Hooks recording flushes and rewinds in order, as the worker's database sees them."""
    points, rewinds, history = [], [], []

    def rewind(step):
        rewinds.append(step)
        history[:] = [p for p in history if p["step"] <= step]

    def flush(p, e, s):
        points.extend(p)
        history.extend(p)

    hooks = Hooks(flush=flush, rewind=rewind, flush_seconds=0)
    hooks.history = history
    return hooks, points, rewinds


@pytest.mark.parametrize("direct", DIRECT)
def test_rollback_halves_the_rate_and_finishes(direct):
    x, y = data(scale=3.0)
    job = spec(0.05, on_divergence="rollback", max_rollbacks=6)
    with pytest.raises(Diverged):
        train(spec(0.05), x, y, CPU, direct=direct)  # the same job without rollback diverges
    hooks, points, rewinds = collect(job, x, y)
    result = train(job, x, y, CPU, hooks, direct=direct)
    assert result.epochs_run == 6 and rewinds
    # After each rewind the history goes on from the rewound step: one run whose steps go
    # 1, 2, 3, ... without gaps or repeats, and one point per epoch.
    steps = [p["step"] for p in hooks.history if p["kind"] == "step"]
    assert steps == list(range(1, 6 * 8 + 1))
    assert [p["epoch"] for p in hooks.history if p["kind"] == "epoch"] == list(range(1, 7))
    epochs = [p for p in points if p["kind"] == "epoch"]
    assert epochs[-1]["rollbacks"] >= 1 and np.isfinite(epochs[-1]["train_loss"])
    # Each rollback halves the rate the schedule then follows: step decay of a halved base.
    assert epochs[-1]["lr"] < 0.05 * 0.5 ** 2
    assert all(torch.isfinite(p.detach()).all() for p in result.model.parameters())


@pytest.mark.parametrize("direct", DIRECT)
def test_rollback_gives_up_after_max_rollbacks(direct):
    x, y = data(scale=3.0)
    hooks, points, rewinds = collect(None, x, y)
    with pytest.raises(Diverged) as info:
        train(spec(1e6, on_divergence="rollback", max_rollbacks=2), x, y, CPU, hooks, direct=direct)
    assert "2 rollbacks" in str(info.value) and len(rewinds) == 2


@pytest.mark.parametrize("direct", DIRECT)
def test_a_captured_state_resumes_to_the_same_weights_and_history(direct):
    x, y = data()
    job = spec(0.01, validation_split=0.25)
    full_points = []
    full = train(job, x, y, CPU, Hooks(flush=lambda p, e, s: full_points.extend(p), flush_seconds=0),
                 direct=direct)

    # Stop mid-epoch (at the 11th flush: epoch 2 of 6 steps each), capture, resume in a fresh trainer.
    first_points, calls = [], []

    def stop_after_11():
        calls.append(1)
        return len(calls) == 11

    trainer = Trainer(job, x, y, CPU, Hooks(flush=lambda p, e, s: first_points.extend(p),
                                             should_stop=stop_after_11, flush_seconds=0), direct=direct)
    with pytest.raises(Stopped):
        trainer.run()
    saved = state.capture(trainer)
    assert 0 < saved["batch"] < trainer.steps_per_epoch and saved["epoch"] == 2  # mid-epoch
    rest_points = []
    resumed = Trainer(job, x, y, CPU, Hooks(flush=lambda p, e, s: rest_points.extend(p), flush_seconds=0),
                      direct=direct)
    state.restore(resumed, saved)
    result = resumed.run()
    for a, b in zip(result.model.state_dict().values(), full.model.state_dict().values()):
        assert torch.equal(a, b)
    strip = [{k: v for k, v in p.items() if k not in ("epoch_seconds", "samples_per_second")}
             for p in first_points + rest_points]
    want = [{k: v for k, v in p.items() if k not in ("epoch_seconds", "samples_per_second")}
            for p in full_points]
    assert strip == want


@pytest.mark.parametrize("direct", DIRECT)
def test_checkpoints_resume_bit_for_bit_at_every_point(direct):
    """Resume from each checkpoint a run wrote (epoch ends, and mid-epoch by time): the final
    weights and the history after the checkpoint equal the uninterrupted run's."""
    from worker.training.checkpoint import restore_bytes

    x, y = data()
    job = spec(0.01, validation_split=0.25, epochs=4, checkpoint_every=1)
    points, saved = [], []
    hooks = Hooks(flush=lambda p, e, s: points.extend(p), flush_seconds=0,
                  checkpoint=lambda blob, step: saved.append((step, blob, len(points))),
                  checkpoint_seconds=0)
    full = train(job, x, y, CPU, hooks, direct=direct)
    assert len(saved) > 4  # epoch ends and mid-epoch ones
    strip = lambda ps: [{k: v for k, v in p.items() if k not in ("epoch_seconds", "samples_per_second")}
                        for p in ps]
    for step, blob, flushed in saved:
        rest = []
        trainer = Trainer(job, x, y, CPU, Hooks(flush=lambda p, e, s: rest.extend(p), flush_seconds=0),
                          direct=direct)
        assert restore_bytes(trainer, blob) == step
        result = trainer.run()
        for a, b in zip(result.model.state_dict().values(), full.model.state_dict().values()):
            assert torch.equal(a, b), step
        # Exactly the points the uninterrupted run flushed after this checkpoint: none twice.
        assert strip(rest) == strip(points[flushed:]), step
