"""worker/training/direct.py: the step's direct calls compute exactly what the ordinary calls do.

Each test trains two copies of one model from one seed, side by side: one with
``loss_fn(model(x)).backward()`` and ``optimizer.step()``, the other with direct.forward,
direct.backward and direct.update. Their weights must be equal (torch.equal) after every step.
The last tests check the switch: the Trainer's ``direct`` argument and Settings.direct_kernels.
"""
import copy

import pytest
import torch
from torch import nn

from app import config
from app.ml.spec import JobSpec
from tests.devices import DEVICES
from tests.direct_modes import DIRECT
from worker.training import Trainer, direct

CPU = torch.device("cpu")
STEPS = 12

OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=0.01, fused=True),
    "adam-wd": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-6, fused=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.02, fused=True),
    "adam-maximize": lambda p: torch.optim.Adam(p, lr=0.01, maximize=True, fused=True),
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1, fused=True),
    "sgd-momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01, fused=True),
    "nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, fused=True),
    # Not shortcut: they must take optimizer.step() and still match.
    "adam-amsgrad": lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True, fused=True),
    "adam-foreach": lambda p: torch.optim.Adam(p, lr=0.01, foreach=True),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.1, fused=True),
}
SHORTCUT = {"adam", "adam-wd", "adamw", "adam-maximize", "sgd", "sgd-momentum", "nesterov"}


def make(kind: str, seed: int = 0, device: torch.device = CPU):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).to(device)
    return model, nn.CrossEntropyLoss(), OPTIMIZERS[kind](model.parameters())


def batches(n: int = STEPS, device: torch.device = CPU):
    g = torch.Generator().manual_seed(7)
    return [(torch.randn(8, 6, generator=g).to(device), torch.randint(0, 3, (8,), generator=g).to(device))
            for _ in range(n)]


def ordinary_step(model, loss_fn, opt, xb, yb):
    opt.zero_grad()
    loss = loss_fn(model(xb), yb)
    loss.backward()
    opt.step()
    return loss


def count_steps(opt) -> list:
    calls = []
    inner = opt.step
    opt.step = lambda *a, **k: (calls.append(1), inner(*a, **k))[1]
    return calls


def assert_same(a: nn.Module, b: nn.Module):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
def test_direct_step_equals_ordinary_step_bitwise(kind, device):
    m1, l1, o1 = make(kind, device=device)
    m2, l2, o2 = make(kind, device=device)
    calls = count_steps(o2)
    run, update = direct.forward(m2, l2), direct.update(o2)
    for xb, yb in batches(device=device):
        want = ordinary_step(m1, l1, o1, xb, yb)
        for p in m2.parameters():
            p.grad = None
        got = run(xb, yb)
        direct.backward(got)
        update()
        assert torch.equal(got, want)
        assert_same(m1, m2)
    assert o1.state_dict()["state"].keys() == o2.state_dict()["state"].keys()
    for s1, s2 in zip(o1.state_dict()["state"].values(), o2.state_dict()["state"].values()):
        assert all(torch.equal(s1[k], s2[k]) for k in s1)
    # The shortcut is really taken: only the first step (which creates the state) is ordinary.
    assert len(calls) == (1 if kind in SHORTCUT else STEPS)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["adam", "sgd-momentum"])
def test_schedules_and_reloaded_state_reach_the_direct_update(kind, device):
    """A schedule changes the group's lr and momentum/betas every step, and load_state_dict
    (a rollback) replaces both the state and the group: the update reads them anew."""
    m1, l1, o1 = make(kind, device=device)
    m2, l2, o2 = make(kind, device=device)
    s1 = torch.optim.lr_scheduler.OneCycleLR(o1, max_lr=0.05, total_steps=2 * STEPS)
    s2 = torch.optim.lr_scheduler.OneCycleLR(o2, max_lr=0.05, total_steps=2 * STEPS)
    run, update = direct.forward(m2, l2), direct.update(o2)
    saved = None
    for i, (xb, yb) in enumerate(batches(device=device) * 2):
        if i == STEPS // 2:
            saved = ({k: v.clone() for k, v in m2.state_dict().items()}, o2.state_dict(), s2.state_dict())
            saved = copy.deepcopy(saved)
        if i == STEPS:  # both roll back to the saved point, with half the rate
            for m, o, s in ((m1, o1, s1), (m2, o2, s2)):
                m.load_state_dict(saved[0])
                o.load_state_dict(copy.deepcopy(saved[1]))
                s.load_state_dict(copy.deepcopy(saved[2]))
                s.base_lrs = [lr / 2 for lr in s.base_lrs]
                for g in o.param_groups:
                    g["lr"] /= 2
        ordinary_step(m1, l1, o1, xb, yb)
        for p in m2.parameters():
            p.grad = None
        direct.backward(run(xb, yb))
        update()
        s1.step()
        s2.step()
        assert_same(m1, m2)


def test_hooks_keep_the_ordinary_calls():
    model, loss_fn, opt = make("adam")
    seen = {"forward": 0, "step": 0}
    model[0].register_forward_hook(lambda *a: seen.__setitem__("forward", seen["forward"] + 1))
    run, update = direct.forward(model, loss_fn), direct.update(opt)
    opt.register_step_pre_hook(lambda *a: seen.__setitem__("step", seen["step"] + 1))  # after: still seen
    for xb, yb in batches(3):
        direct.backward(run(xb, yb))
        update()
    assert seen == {"forward": 3, "step": 3}


def test_a_parameter_without_a_gradient_takes_the_ordinary_step():
    """PyTorch's step skips such a parameter; so must the update (the kernel would fail)."""
    torch.manual_seed(0)
    used, unused = nn.Linear(4, 2), nn.Linear(4, 2)
    opt = torch.optim.Adam([*used.parameters(), *unused.parameters()], lr=0.1, fused=True)
    calls = count_steps(opt)
    update = direct.update(opt)
    before = [p.clone() for p in unused.parameters()]
    for _ in range(3):
        opt.zero_grad()
        direct.backward(used(torch.ones(3, 4)).sum())
        update()
    assert len(calls) == 3
    assert all(torch.equal(a, b) for a, b in zip(before, unused.parameters()))


# ---- the switch ---------------------------------------------------------------------

def trainer_job() -> tuple[JobSpec, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 6, generator=g).numpy(), torch.randint(0, 3, (40,), generator=g).numpy()
    spec = JobSpec.model_validate({
        "dataset": "ds_test", "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam", "lr": 0.01},
        "model": {"layers": [{"type": "linear", "out_features": 8}, {"type": "relu"},
                             {"type": "linear", "out_features": 3}]},
        "training": {"epochs": 2, "batch_size": 8}})
    return spec, x, y


def ordinary_backwards(monkeypatch) -> list:
    """Counts torch.autograd.backward calls: Tensor.backward makes one, direct.backward none."""
    calls, inner = [], torch.autograd.backward
    monkeypatch.setattr(torch.autograd, "backward", lambda *a, **k: (calls.append(1), inner(*a, **k))[1])
    return calls


@pytest.mark.parametrize("direct_on", DIRECT)
def test_the_trainer_makes_the_calls_its_switch_says(direct_on, monkeypatch):
    spec, x, y = trainer_job()
    calls = ordinary_backwards(monkeypatch)
    trainer = Trainer(spec, x, y, CPU, direct=direct_on)
    trainer.run()
    assert trainer.step == 10
    assert len(calls) == (0 if direct_on else trainer.step)


def test_the_setting_switches_the_direct_calls_off(monkeypatch):
    spec, x, y = trainer_job()
    calls = ordinary_backwards(monkeypatch)
    monkeypatch.setenv("DIRECT_KERNELS", "false")
    config.get_settings.cache_clear()
    try:
        off = Trainer(spec, x, y, CPU).run()
    finally:
        monkeypatch.delenv("DIRECT_KERNELS")
        config.get_settings.cache_clear()
    assert len(calls) == 10
    on = Trainer(spec, x, y, CPU).run()  # the default: direct kernel calls
    assert len(calls) == 10
    assert_same(on.model, off.model)
