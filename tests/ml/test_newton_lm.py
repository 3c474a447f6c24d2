"""Newton and Levenberg-Marquardt against their published updates, written out here by the
formula on a tiny 1-3-1 tanh network in float64: nothing of app/ml/optim's code is used by the
references (torch.autograd.functional gives them the Hessian and the Jacobian)."""
import math

import pytest
import torch
from torch import nn
from torch.autograd.functional import hessian, jacobian

from app.ml.optim.levenberg_marquardt import LevenbergMarquardt
from app.ml.optim.newton import Newton
from app.ml.optim.objective import Objective

STEPS = 6
X = torch.linspace(-math.pi, math.pi, 12, dtype=torch.float64).unsqueeze(1)
Y = torch.sin(X)


def network() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(1, 3), nn.Tanh(), nn.Linear(3, 1)).double()


def unpack(v):
    """The network's weights from the flat vector, in nn.Sequential's parameter order."""
    return v[0:3].view(3, 1), v[3:6], v[6:9].view(1, 3), v[9:10]


def outputs(v):
    w1, b1, w2, b2 = unpack(v)
    return torch.tanh(X @ w1.T + b1) @ w2.T + b2


def mse(v):
    return (outputs(v) - Y).pow(2).mean()


def start() -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in network().parameters()])


def run_optimizer(cls, **options) -> list[torch.Tensor]:
    model = network()
    params = list(model.parameters())
    opt = cls(params, **options)
    out = []
    for _ in range(STEPS):
        opt.step(Objective(model, nn.MSELoss(), X, Y, params))
        out.append(torch.cat([p.detach().flatten() for p in params]))
    return out


def damped(a, b, lam, take, dec=0.1, inc=10.0, most=1e10):
    """trainlm's rule: solve (A + λI) d = -b; a step that lowers the loss is taken and λ shrinks,
    otherwise (or when A + λI has no Cholesky factor) λ grows and the step is tried again."""
    while lam <= most:
        try:
            factor = torch.linalg.cholesky(a + lam * torch.eye(len(b), dtype=a.dtype))
        except torch.linalg.LinAlgError:
            lam *= inc
            continue
        d = -torch.cholesky_solve(b.unsqueeze(1), factor).squeeze(1)
        if take(d):
            return max(lam * dec, 1e-20)
        lam *= inc
    return most


def newton_by_hand(lr=1.0, damping=1e-3, c1=1e-4, max_backtracks=10) -> list[torch.Tensor]:
    v, lam, out = start(), damping, []
    for _ in range(STEPS):
        g = torch.autograd.functional.vjp(mse, v)[1]
        h, f0, moved = hessian(mse, v), float(mse(v)), [v]

        def take(d):
            t = lr
            for _ in range(1 + max_backtracks):
                f = float(mse(v + t * d))
                if f <= f0 + c1 * t * float(g @ d) and f < f0:  # Armijo's sufficient decrease
                    moved[0] = v + t * d
                    return True
                t *= 0.5
            return False

        lam = damped(h, g, lam, take)
        v = moved[0]
        out.append(v)
    return out


def levenberg_marquardt_by_hand(mu=1e-3) -> list[torch.Tensor]:
    v, out = start(), []
    for _ in range(STEPS):
        e = (outputs(v) - Y).flatten()
        j = jacobian(lambda u: (outputs(u) - Y).flatten(), v)
        f0, moved = float(e.pow(2).mean()), [v]

        def take(d):
            better = float(mse(v + d)) < f0
            if better:
                moved[0] = v + d
            return better

        mu = damped(j.T @ j, j.T @ e, mu, take)
        v = moved[0]
        out.append(v)
    return out


def test_newton_takes_the_damped_newton_steps_of_the_formula():
    got, want = run_optimizer(Newton), newton_by_hand()
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11)
    losses = [float(mse(v)) for v in [start(), *got]]
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0]


def test_newton_without_line_search_and_with_a_smaller_step():
    got = run_optimizer(Newton, line_search=None, lr=0.5)
    v, lam = start(), 1e-3
    for step in got:
        g, h = torch.autograd.functional.vjp(mse, v)[1], hessian(mse, v)
        moved = [v]

        def take(d, v=v):
            better = float(mse(v + 0.5 * d)) < float(mse(v))
            if better:
                moved[0] = v + 0.5 * d
            return better

        lam = damped(h, g, lam, take)
        v = moved[0]
        torch.testing.assert_close(step, v, rtol=1e-9, atol=1e-11)


def test_levenberg_marquardt_takes_trainlms_steps():
    got, want = run_optimizer(LevenbergMarquardt), levenberg_marquardt_by_hand()
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11)
    losses = [float(mse(v)) for v in [start(), *got]]
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0]


def test_newton_solves_least_squares_in_a_few_steps():
    """A linear model's mse is a convex quadratic: its Newton step lands on the least-squares
    solution but for the damping (1e-3, then 1e-4, ...), so a few steps reach it."""
    torch.manual_seed(0)
    x, y = torch.randn(20, 4, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64)
    model = nn.Linear(4, 1, bias=False).double()
    opt = Newton([model.weight])
    for _ in range(4):
        opt.step(Objective(model, nn.MSELoss(), x, y, [model.weight]))
    # To about the square root of float64's precision: a step is taken only when the loss falls,
    # and next to the minimum the loss changes by the square of the distance to it.
    torch.testing.assert_close(model.weight.detach().T, torch.linalg.lstsq(x, y).solution, rtol=1e-6, atol=1e-7)


def test_levenberg_marquardt_continues_exactly_from_its_state_dict():
    def steps(model, opt, n):
        params = list(model.parameters())
        for _ in range(n):
            opt.step(Objective(model, nn.MSELoss(), X, Y, params))

    straight = network()
    steps(straight, LevenbergMarquardt(list(straight.parameters())), 6)
    first = network()
    opt = LevenbergMarquardt(list(first.parameters()))
    steps(first, opt, 3)
    saved = opt.state_dict()
    assert saved["state"][0]["mu"] != 1e-3  # μ moved, so the state matters
    again = LevenbergMarquardt(list(first.parameters()))
    again.load_state_dict(saved)
    steps(first, again, 3)
    for a, b in zip(first.parameters(), straight.parameters()):
        assert torch.equal(a, b)


LAYERS = {
    "lstm": ([{"type": "lstm", "hidden_size": 3}, {"type": "linear", "out_features": 1}], (5, 2)),
    "attention": ([{"type": "attention", "num_heads": 1}, {"type": "flatten"}, {"type": "linear", "out_features": 1}],
                  (3, 2)),
    "conv_residual": ([{"type": "conv1d", "out_channels": 2, "kernel_size": 3, "padding": "same"},
                       {"type": "residual", "layers": [{"type": "conv1d", "out_channels": 2, "kernel_size": 3,
                                                        "padding": "same"}, {"type": "gelu"}]},
                       {"type": "flatten"}, {"type": "linear", "out_features": 2}], (1, 6)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_the_objectives_hessian_and_jacobian_are_torchs_for_every_kind_of_layer(name):
    """LSTM (whose CPU kernel has no forward-mode derivative), attention (whose fused kernels have
    no second derivative) and residual convolutions, against torch.autograd.functional; with an
    l2 penalty on the weights, as the training loop adds it."""
    from app.ml import spec as S
    from app.ml.build import build_model

    layers, shape = LAYERS[name]
    torch.manual_seed(0)
    model = build_model(S.ModelSpec.model_validate({"layers": layers}), shape)
    x = torch.randn(4, *shape)
    y = torch.randn(4, 2 if name == "conv_residual" else 1)
    params = list(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    weights = [n for n, p in model.named_parameters() if p.dim() >= 2]
    penalty = lambda named: 0.01 * sum(named[n].pow(2).sum() for n in weights)
    objective = Objective(model, nn.MSELoss(), x, y, params, penalty)
    v = objective.flat()

    def named(u):
        sizes = [p.numel() for p in params]
        return {n: piece.view_as(p) for n, p, piece in zip(names, params, torch.split(u, sizes))}

    def loss(u):
        return nn.functional.mse_loss(torch.func.functional_call(model, named(u), (x,)), y) + penalty(named(u))

    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        want_h = hessian(loss, v)
        want_j = jacobian(lambda u: (torch.func.functional_call(model, named(u), (x,)) - y).flatten(), v)
    g, h = objective.gradient_and_hessian(v)
    torch.testing.assert_close(h, want_h, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g, torch.func.grad(loss)(v), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(objective.jacobian(v)[1], want_j, rtol=1e-5, atol=1e-6)
    assert float(h.abs().sum()) > 0


def test_chunked_derivatives_equal_the_whole(monkeypatch):
    """Large problems are differentiated a few basis vectors at a time: same matrices."""
    from app.ml.optim import objective as module

    model = network()
    params = list(model.parameters())
    whole = Objective(model, nn.MSELoss(), X, Y, params)
    v = whole.flat()
    want_h, want_j = whole.gradient_and_hessian(v)[1], whole.jacobian(v)[1]
    monkeypatch.setattr(module, "CHUNK_FLOATS", 1600)  # a few rows per chunk, the last one short
    chunked = Objective(model, nn.MSELoss(), X, Y, params)
    assert 1 < module.CHUNK_FLOATS // (4 * chunked._activation_floats(v) + v.numel()) < len(v)
    assert torch.equal(chunked.gradient_and_hessian(v)[1], want_h)
    assert torch.equal(chunked.jacobian(v)[1], want_j)
