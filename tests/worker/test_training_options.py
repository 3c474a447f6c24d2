"""Losses, schedules, regularization, early stopping, L-BFGS and the divergence guard, in the trainer."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from app.ml.losses import loss_spec
from app.ml.build import build_loss
from app.ml.spec import JobSpec
from tests.direct_modes import DIRECT
from worker.training import Diverged, Hooks, train

CPU = torch.device("cpu")


def regression(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)


def classes(n=90, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(size=(n, 4)) + y[:, None]).astype(np.float32), y.astype(np.int64)


def spec(layers=None, loss="mse", optimizer=None, **sections) -> JobSpec:
    body = {"dataset": "ds_test", "loss": {"type": loss} if isinstance(loss, str) else loss,
            "model": {"layers": layers or [{"type": "linear", "out_features": 8}, {"type": "tanh"},
                                           {"type": "linear", "out_features": 1}]},
            "optimizer": optimizer or {"type": "sgd", "lr": 0.05}}
    body["training"] = {"epochs": 6, "batch_size": 16, "log_every_steps": 1, **sections.pop("training", {})}
    body.update(sections)
    return JobSpec.model_validate(body)


def run(job: JobSpec, x, y, direct=True):
    points = []
    result = train(job, x, y, CPU, Hooks(flush=lambda p, e, s: points.extend(p), flush_seconds=0), direct=direct)
    return result, [p for p in points if p["kind"] == "epoch"], [p for p in points if p["kind"] == "step"]


# ---- losses -------------------------------------------------------------------------

@pytest.mark.parametrize("loss, options, reference", [
    ("huber", {"delta": 0.5}, lambda o, t: nn.functional.huber_loss(o, t, delta=0.5)),
    ("cross_entropy", {"label_smoothing": 0.1, "weight": [1.0, 2.0, 0.5]},
     lambda o, t: nn.functional.cross_entropy(o, t, weight=torch.tensor([1.0, 2.0, 0.5]), label_smoothing=0.1)),
    ("nll", {"weight": [0.5, 1.0, 3.0]},
     lambda o, t: nn.functional.nll_loss(o, t, weight=torch.tensor([0.5, 1.0, 3.0]))),
])
def test_loss_options_change_the_loss_as_defined(loss, options, reference):
    torch.manual_seed(0)
    out, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    target = labels if loss != "huber" else torch.randn(8, 3) * 3
    inputs = out.log_softmax(1) if loss == "nll" else out
    built = build_loss(loss_spec(loss, **options))
    assert torch.equal(built(inputs, target), reference(inputs, target))
    assert not torch.equal(built(inputs, target), build_loss(loss_spec(loss))(inputs, target))


def test_bce_pos_weight():
    out, target = torch.randn(6, 2), torch.randint(0, 2, (6, 2)).float()
    built = build_loss(loss_spec("bce_with_logits", pos_weight=[2.0, 0.5]))
    want = nn.functional.binary_cross_entropy_with_logits(out, target, pos_weight=torch.tensor([2.0, 0.5]))
    assert torch.equal(built(out, target), want)


# ---- schedules: the lr of each epoch equals PyTorch's own scheduler ---------------------

def lrs_of(schedule: dict, epochs=8, optimizer=None, direct=True, **extra):
    x, y = regression()
    _, epochs_points, _ = run(spec(schedule=schedule, optimizer=optimizer or {"type": "sgd", "lr": 0.1},
                                   training={"epochs": epochs, **extra}), x, y, direct)
    return [p["lr"] for p in epochs_points]


def torch_lrs(make, epochs=8, per_batch_steps=None, lr=0.1):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(epochs):
        # An epoch reports its first batch's rate (per epoch: every batch's).
        out.append(opt.param_groups[0]["lr"]) if per_batch_steps else None
        for _ in range(per_batch_steps or 0):
            opt.step()
            sched.step()
        if not per_batch_steps:
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return out


S = torch.optim.lr_scheduler


@pytest.mark.parametrize("schedule, make", [
    ({"type": "constant"}, lambda o: S.ConstantLR(o, factor=1.0)),
    ({"type": "step", "step_size": 3, "gamma": 0.5}, lambda o: S.StepLR(o, 3, 0.5)),
    ({"type": "multistep", "milestones": [2, 5], "gamma": 0.1}, lambda o: S.MultiStepLR(o, [2, 5], 0.1)),
    ({"type": "exponential", "gamma": 0.9}, lambda o: S.ExponentialLR(o, 0.9)),
    ({"type": "cosine", "eta_min": 0.01}, lambda o: S.CosineAnnealingLR(o, 8, 0.01)),
    ({"type": "cosine", "warm_restarts": True, "restart_epochs": 3, "t_mult": 2},
     lambda o: S.CosineAnnealingWarmRestarts(o, 3, 2)),
    ({"type": "step", "step_size": 2, "gamma": 0.5, "warmup": {"epochs": 3, "start_factor": 0.25}},
     lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.25, total_iters=3), S.StepLR(o, 2, 0.5)], [3])),
    ({"type": "constant", "warmup": {"epochs": 2}}, lambda o: S.LinearLR(o, 0.1, total_iters=2)),
], ids=["constant", "step", "multistep", "exponential", "cosine", "cosine_restarts", "warmup_step",
        "warmup_constant"])
@pytest.mark.parametrize("direct", DIRECT)
def test_epoch_schedules_equal_pytorch(schedule, make, direct):
    # Schedulers built against a throwaway optimizer: a constant schedule is no scheduler at all.
    want = torch_lrs(make)
    assert lrs_of(schedule, direct=direct) == pytest.approx(want, rel=1e-12)
    assert len(set(want)) > 1 or schedule["type"] == "constant"


@pytest.mark.parametrize("direct", DIRECT)
def test_one_cycle_steps_per_batch(direct):
    # 64 rows, batch 16: 4 steps per epoch.
    got = lrs_of({"type": "one_cycle", "max_lr": 1.0}, epochs=5, direct=direct)
    want = torch_lrs(lambda o: S.OneCycleLR(o, max_lr=1.0, epochs=5, steps_per_epoch=4), epochs=5,
                     per_batch_steps=4)
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("direct", DIRECT)
def test_reduce_on_plateau_cuts_the_rate_when_the_loss_stalls(direct):
    # With a vanishing lr the loss cannot improve by the threshold, so each patience window cuts it.
    got = lrs_of({"type": "reduce_on_plateau", "patience": 1, "factor": 0.5, "threshold": 0.5},
                 epochs=6, optimizer={"type": "sgd", "lr": 1e-6}, direct=direct)
    assert got[0] == 1e-6 and got[-1] < got[0]
    assert all(b in (a, a * 0.5) for a, b in zip(got, got[1:]))


# ---- regularization ---------------------------------------------------------------

def grads_after_one_step(reg: dict):
    x, y = regression(16)
    job = spec(regularization=reg, training={"epochs": 1, "batch_size": "full", "shuffle": False})
    torch.manual_seed(job.training.seed)
    from app.ml.build import build_model
    model = build_model(job.model, (3,))
    out = nn.functional.mse_loss(model(torch.as_tensor(x)), torch.as_tensor(y).unsqueeze(1))
    out.backward()
    return model, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_penalties_add_their_gradient_to_weights_only(kind):
    from app.ml.regularization import Regularization
    from worker.training.regularization import penalty, weights

    model, plain = grads_after_one_step({})
    model.zero_grad()
    x, y = regression(16)
    reg = Regularization.model_validate({kind: 0.3})
    loss = nn.functional.mse_loss(model(torch.as_tensor(x)), torch.as_tensor(y).unsqueeze(1))
    (loss + penalty(reg, weights(model))).backward()
    for name, p in model.named_parameters():
        extra = 0.3 * (p.detach().sign() if kind == "l1" else 2 * p.detach())
        want = plain[name] + extra if p.dim() >= 2 else plain[name]
        torch.testing.assert_close(p.grad, want)


def test_grad_clip_by_norm_and_value():
    from app.ml.regularization import Regularization
    from worker.training.regularization import clip_gradients

    model, _ = grads_after_one_step({})
    clip_gradients(Regularization.model_validate({"grad_clip": {"type": "norm", "max_norm": 0.01}}), model)
    total = torch.stack([p.grad.norm() for p in model.parameters()]).norm()
    assert total == pytest.approx(0.01, rel=1e-4)
    model, _ = grads_after_one_step({})
    clip_gradients(Regularization.model_validate({"grad_clip": {"type": "value", "clip_value": 1e-3}}), model)
    assert max(p.grad.abs().max() for p in model.parameters()) <= 1e-3


@pytest.mark.parametrize("direct", DIRECT)
def test_weight_clip_max_norm_and_clamp_hold_after_every_step(direct):
    x, y = regression()
    result, _, _ = run(spec(regularization={"weight_clip": {"type": "max_norm", "max_norm": 0.3}},
                            optimizer={"type": "sgd", "lr": 0.5}), x, y, direct)
    for p in result.model.parameters():
        if p.dim() >= 2:
            assert p.detach().norm(dim=1).max() <= 0.3 + 1e-6
    result, _, _ = run(spec(regularization={"weight_clip": {"type": "clamp", "min": -0.05, "max": 0.05}},
                            optimizer={"type": "sgd", "lr": 0.5}), x, y, direct)
    assert all(p.detach().abs().max() <= 0.05 for p in result.model.parameters())


@pytest.mark.parametrize("direct", DIRECT)
def test_early_stopping_stops_and_restores_the_best_epoch(direct):
    x, y = regression()
    es = {"monitor": "train_loss", "patience": 2, "min_delta": 1e9, "restore_best": True}
    result, epochs, _ = run(spec(regularization={"early_stopping": es}, training={"epochs": 20}), x, y, direct)
    # Nothing beats the first epoch by 1e9: epochs 2 and 3 use up the patience.
    assert [p["epoch"] for p in epochs] == [1, 2, 3]
    assert result.stopped_early and result.best_epoch == 1 and result.epochs_run == 3
    one_epoch, _, _ = run(spec(training={"epochs": 1}), x, y, direct)
    for a, b in zip(result.model.state_dict().values(), one_epoch.model.state_dict().values()):
        assert torch.equal(a, b)


# ---- L-BFGS -------------------------------------------------------------------------

@pytest.mark.parametrize("direct", DIRECT)
def test_lbfgs_full_batch_equals_a_plain_closure_loop(direct):
    x, y = regression()
    job = spec(layers=[{"type": "linear", "out_features": 1}],
               training={"epochs": 4, "batch_size": "full", "shuffle": False},
               optimizer={"type": "lbfgs", "lr": 1.0, "line_search_fn": "strong_wolfe"})
    result, epochs, steps = run(job, x, y, direct)
    torch.manual_seed(job.training.seed)
    model = nn.Sequential(nn.Linear(3, 1))
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, line_search_fn="strong_wolfe")
    X, Y = torch.as_tensor(x), torch.as_tensor(y).unsqueeze(1)
    want = []

    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(X), Y)
        loss.backward()
        return loss

    for _ in range(4):
        want.append(opt.step(closure).item())
    assert [p["train_loss"] for p in steps] == want
    assert torch.equal(result.model[0].weight, model[0].weight)
    assert epochs[-1]["train_loss"] < 1e-6


# ---- divergence and diagnostics -----------------------------------------------------------

@pytest.mark.parametrize("direct", DIRECT)
def test_divergence_stops_with_the_epoch_and_step_and_keeps_earlier_points(direct):
    x, y = regression()
    points = []
    with pytest.raises(Diverged) as info:
        train(spec(optimizer={"type": "sgd", "lr": 50.0}, training={"epochs": 30}), x, y, CPU,
              Hooks(flush=lambda p, e, s: points.extend(p), flush_seconds=0), direct=direct)
    msg = str(info.value)
    assert msg.startswith(f"diverged at epoch {info.value.epoch} step {info.value.step}: loss became ")
    assert msg.split()[-1] in ("nan", "inf")
    assert points and all(math.isfinite(p["train_loss"]) for p in points)
    assert max(p["step"] for p in points) < info.value.step


@pytest.mark.parametrize("direct", DIRECT)
def test_epoch_points_carry_gradient_and_parameter_norms_per_layer(direct):
    x, y = classes()
    _, epochs, _ = run(spec(layers=[{"type": "linear", "out_features": 8}, {"type": "relu"},
                                    {"type": "linear", "out_features": 3}], loss="cross_entropy"), x, y, direct)
    p = epochs[-1]
    assert set(p["grad_norms"]) == set(p["param_norms"]) == {"layers[0]", "layers[2]"}
    assert p["grad_norm"] == pytest.approx(math.hypot(*p["grad_norms"].values()), rel=1e-5)
    assert p["param_norm"] > 0 and all(v > 0 for v in p["grad_norms"].values())
