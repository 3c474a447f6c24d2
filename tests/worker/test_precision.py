"""training.precision: bf16 and fp16 autocast (fp16 with a gradient scaler) in the trainer.

Mixed precision is refused on the CPU for jobs, but the trainer itself runs autocast on
whatever device it is given, so these tests exercise its code paths on the CPU, where
``torch.autocast("cpu", ...)`` and ``torch.amp.GradScaler("cpu")`` compute deterministically.
The trainer must equal ``plain_amp_loop`` (docs/equivalence.md, "Mixed precision") bit for bit.
On a machine with a GPU the same comparisons run on CUDA too (tests/devices.py).
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

from app.ml.errors import SpecError
from app.ml.spec import JobSpec
from tests.devices import DEVICES
from tests.direct_modes import DIRECT
from tests.embedded import add_dataset, add_job, embedded, get_job  # noqa: F401
from worker.runner import run_job
from worker.training import Hooks, Trainer, precision, state, train
from worker.training.checkpoint import restore_bytes

CPU = torch.device("cpu")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


# ---- the plain loop (no Trainyard code) ------------------------------------------

def plain_amp_loop(x, y, *, precision, make_model, make_optimizer, loss_fn, epochs, batch_size,
                   validation_split, seed, clip_norm=None, device=CPU):
    """docs/equivalence.md's loop with autocast around the forward pass and the loss, and for
    fp16 a GradScaler. Returns (batch losses, epoch points, model, scaler)."""
    torch.manual_seed(seed)
    model = make_model().to(device)
    optimizer = make_optimizer(model.parameters())
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    autocast = lambda: torch.autocast(device.type, dtype=DTYPES[precision])  # noqa: E731
    g = torch.Generator().manual_seed(seed)

    X = torch.as_tensor(x, dtype=torch.float32)
    Y = torch.as_tensor(y, dtype=torch.int64) if y.dtype == np.int64 else \
        torch.as_tensor(y, dtype=torch.float32).unsqueeze(1)
    n_val = int(len(X) * validation_split)
    perm = torch.randperm(len(X), generator=g)
    x_tr, y_tr = X[perm[n_val:]].to(device), Y[perm[n_val:]].to(device)
    x_val, y_val = X[perm[:n_val]].to(device), Y[perm[:n_val]].to(device)
    n_train = len(x_tr)
    steps = math.ceil(n_train / batch_size)
    losses, points = [], []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n_train, generator=g).to(device)
        total = torch.zeros((), device=device)
        for b in range(steps):
            idx = order[b * batch_size:(b + 1) * batch_size]
            xb, yb = x_tr[idx], y_tr[idx]
            optimizer.zero_grad()
            with autocast():
                loss = loss_fn(model(xb), yb)
            if scaler is None:
                loss.backward()
            else:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)          # true gradients for clipping and norms
            grad_norm = torch.stack([p.grad.norm() for p in model.parameters()]).norm()
            if clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)               # skipped when the gradients overflowed
                scaler.update()
            losses.append(loss.item())
            total += loss.detach() * len(xb)
        point = {"train_loss": (total / n_train).item(), "grad_norm": grad_norm.item()}
        model.eval()
        vloss = torch.zeros((), device=device)
        with torch.no_grad():
            with autocast():                         # validation under autocast too
                chunk_loss = loss_fn(model(x_val), y_val)
            vloss += chunk_loss * len(y_val)
        model.train()
        point["val_loss"] = (vloss / n_val).item()
        points.append(point)
    return losses, points, model, scaler


# ---- cases ---------------------------------------------------------------------------

def _bf16_classifier():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 150)
    x = (rng.standard_normal((150, 6)) + y[:, None]).astype(np.float32)
    spec = {"model": {"layers": [{"type": "linear", "out_features": 32}, {"type": "relu"},
                                 {"type": "dropout", "p": 0.2}, {"type": "linear", "out_features": 3}]},
            "loss": {"type": "cross_entropy"}, "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
            "training": {"epochs": 6, "batch_size": 16, "validation_split": 0.2, "seed": 7,
                         "log_every_steps": 1, "precision": "bf16"}}
    plain = dict(make_model=lambda: nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.2),
                                                  nn.Linear(32, 3)),
                 make_optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, fused=True),
                 loss_fn=nn.CrossEntropyLoss())
    return spec, x, y.astype(np.int64), plain


def _fp16_regression_that_overflows():
    """Targets in the tens: 65536 times their gradients overflow fp16, so the scaler skips
    steps and backs off. The loss scale is then real state a resume must keep."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((120, 4)).astype(np.float32)
    y = (x @ np.array([30.0, -20.0, 10.0, 5.0]) + 10).astype(np.float32)
    spec = {"model": {"layers": [{"type": "linear", "out_features": 16}, {"type": "relu"},
                                 {"type": "linear", "out_features": 1}]},
            "loss": {"type": "mse"}, "optimizer": {"type": "adam", "lr": 0.1},
            "regularization": {"grad_clip": {"type": "norm", "max_norm": 100.0}},
            "training": {"epochs": 8, "batch_size": 16, "validation_split": 0.2, "seed": 3,
                         "log_every_steps": 1, "precision": "fp16", "checkpoint_every": 1}}
    plain = dict(make_model=lambda: nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1)),
                 make_optimizer=lambda p: torch.optim.Adam(p, lr=0.1, fused=True),
                 loss_fn=nn.MSELoss(), clip_norm=100.0)
    return spec, x, y, plain


CASES = {"bf16_classifier": _bf16_classifier, "fp16_regression_overflowing": _fp16_regression_that_overflows}


def job(spec: dict) -> JobSpec:
    return JobSpec.model_validate({"dataset": "ds_test", **spec})


def run_trainer(spec: dict, x, y, device=CPU, direct=True, **hooks):
    points = []
    trainer = Trainer(job(spec), x, y, device, Hooks(flush=lambda p, e, s: points.extend(p), flush_seconds=0,
                                                   **hooks), direct=direct)
    return trainer, trainer.run(), points


def strip(points):
    return [{k: v for k, v in p.items() if k not in ("epoch_seconds", "samples_per_second")} for p in points]


@pytest.mark.parametrize("direct", DIRECT)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(CASES))
def test_mixed_precision_equals_the_plain_autocast_loop(case, device, direct):
    spec, x, y, plain = CASES[case]()
    t = spec["training"]
    trainer, result, points = run_trainer(spec, x, y, device, direct)
    losses, plain_points, plain_model, plain_scaler = plain_amp_loop(
        x, y, precision=t["precision"], epochs=t["epochs"], batch_size=t["batch_size"],
        validation_split=t["validation_split"], seed=t["seed"], device=device, **plain)

    assert [p["train_loss"] for p in points if p["kind"] == "step"] == losses
    epochs = [p for p in points if p["kind"] == "epoch"]
    assert [p["train_loss"] for p in epochs] == [p["train_loss"] for p in plain_points]
    assert [p["val_loss"] for p in epochs] == [p["val_loss"] for p in plain_points]
    # The diagnostics are the true (unscaled) gradients, summed per layer first; NaN where
    # the epoch's last step overflowed fp16 (and the scaler skipped it).
    for got, want in zip(epochs, plain_points, strict=True):
        assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-5, nan_ok=True)
    for name, want in plain_model.state_dict().items():
        got = result.model.state_dict()[name]
        assert got.dtype == torch.float32 and torch.equal(got, want), name  # fp32 weights
    if plain_scaler is not None:
        assert trainer.scaler.state_dict() == plain_scaler.state_dict()
        assert trainer.scaler.get_scale() < 2.0 ** 16  # steps were skipped: the case tests the scaler


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(CASES))
def test_mixed_precision_trains(case, device):
    spec, x, y, _ = CASES[case]()
    _, _, points = run_trainer(spec, x, y, device)
    losses = [p["train_loss"] for p in points if p["kind"] == "epoch"]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("direct", DIRECT)
def test_bf16_trains_with_lbfgs(direct):
    spec, x, y, _ = _bf16_classifier()
    spec = {**spec, "optimizer": {"type": "lbfgs"},
            "training": {**spec["training"], "batch_size": "full", "epochs": 4}}
    _, result, points = run_trainer(spec, x, y, direct=direct)
    losses = [p["train_loss"] for p in points if p["kind"] == "epoch"]
    assert losses[-1] < 0.7 * losses[0]
    assert all(p.dtype == torch.float32 for p in result.model.parameters())


def test_fp16_with_lbfgs_is_refused_by_the_trainer_too():
    spec, x, y, _ = _fp16_regression_that_overflows()
    spec = {**spec, "optimizer": {"type": "lbfgs"}, "training": {**spec["training"], "batch_size": "full"}}
    with pytest.raises(SpecError) as info:
        Trainer(job(spec), x, y, CPU)
    assert info.value.field == "training.precision" and "lbfgs" in info.value.message


@pytest.mark.parametrize("direct", DIRECT)
def test_fp16_checkpoints_resume_bit_for_bit_with_the_loss_scale(direct):
    """Resume from checkpoints of an fp16 run whose scale backed off: the final weights,
    the scale and the history after the checkpoint equal the uninterrupted run's."""
    spec, x, y, _ = _fp16_regression_that_overflows()
    points, saved = [], []
    full = Trainer(job(spec), x, y, CPU, Hooks(
        flush=lambda p, e, s: points.extend(p), flush_seconds=0, checkpoint_seconds=0,
        checkpoint=lambda blob, step: saved.append((step, blob, len(points)))), direct=direct)
    result = full.run()
    assert len(saved) > spec["training"]["epochs"]  # epoch ends and mid-epoch ones
    scales = set()
    for step, blob, flushed in saved[::3]:  # a third of them: mid-epoch ones and epoch ends
        rest = []
        trainer = Trainer(job(spec), x, y, CPU, Hooks(flush=lambda p, e, s: rest.extend(p), flush_seconds=0),
                          direct=direct)
        assert restore_bytes(trainer, blob) == step
        scales.add(trainer.scaler.get_scale())
        resumed = trainer.run()
        for name, want in result.model.state_dict().items():
            assert torch.equal(resumed.model.state_dict()[name], want), (step, name)
        assert trainer.scaler.state_dict() == full.scaler.state_dict(), step
        assert strip(rest) == strip(points[flushed:]), step
    assert len(scales) > 1 and min(scales) < 2.0 ** 16  # checkpoints at other scales than the start's


def test_a_captured_state_keeps_the_loss_scale():
    """What a rollback restores (worker/training/state.py) includes fp16's scale and growth counter."""
    spec, x, y, _ = _fp16_regression_that_overflows()
    trainer = Trainer(job(spec), x, y, CPU, Hooks(flush_seconds=0))
    trainer.run()
    at_end = trainer.scaler.state_dict()
    snapshot = state.capture(trainer)
    trainer.scaler.update(new_scale=1.0)
    state.restore(trainer, snapshot)
    assert trainer.scaler.state_dict() == at_end


# ---- the refusal on the CPU --------------------------------------------------------------

def test_require_gpu_refuses_mixed_precision_on_the_cpu():
    precision.require_gpu("fp32", CPU)
    precision.require_gpu("bf16", torch.device("cuda"))
    with pytest.raises(SpecError) as info:
        precision.require_gpu("fp16", CPU)
    assert info.value.field == "training.precision"
    assert "fp16 needs a GPU" in info.value.message and "precision fp32" in info.value.message


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto runs on the GPU here")
def test_a_bf16_job_that_lands_on_a_cpu_worker_fails_with_the_reason(embedded):  # noqa: F811
    spec, x, y, _ = _bf16_classifier()
    job_id = add_job({**spec, "training": {**spec["training"], "device": "auto"}}, add_dataset(x, y))
    run_job(job_id)
    done = get_job(job_id)
    assert done.status == "failed" and done.weights_path is None
    assert done.error.startswith("training.precision: bf16 needs a GPU, but the job was given to a "
                                 "cpu worker")
    assert done.device == "cpu"


def test_train_function_takes_precision_from_the_spec():
    spec, x, y, _ = _bf16_classifier()
    fp32 = train(job({**spec, "training": {**spec["training"], "precision": "fp32"}}), x, y, CPU).model
    bf16 = train(job(spec), x, y, CPU).model
    assert not torch.equal(fp32.state_dict()["0.weight"], bf16.state_dict()["0.weight"])
