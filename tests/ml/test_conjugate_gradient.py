"""ConjugateGradient against Nocedal & Wright's formulas, written out here on a flat float64
vector (the reference shares the line search, torch's own _strong_wolfe, and nothing of ours).

The problem: a 2-3-1 tanh network's mean squared error on 8 fixed rows whose targets another
2-3-1 tanh network made (so a loss near 0 is reachable); its four parameter tensors are
unflattened from the vector by hand, in nn.Sequential's parameter order.
"""
import copy
import io

import pytest
import torch
from torch import nn
from torch.optim.lbfgs import _strong_wolfe

from app.ml.optim.conjugate_gradient import ConjugateGradient
from tests.ml.conjugate_problem import X, Y, flat_weights, fresh_net, net_loss, value_and_grad

TIGHT = {"rtol": 1e-9, "atol": 1e-12}


def beta_by_formula(kind: str, g, g_prev, d_prev) -> float | None:
    """N&W (5.41a), (5.45) and (5.46); None: Hestenes-Stiefel's denominator is 0, restart."""
    y = g - g_prev
    if kind == "fletcher_reeves":
        return float(g @ g / (g_prev @ g_prev))
    if kind == "polak_ribiere":
        return max(0.0, float(g @ y / (g_prev @ g_prev)))
    if float(d_prev @ y) == 0:
        return None
    return float(g @ y / (d_prev @ y))


def cg_reference(loss_fn, w, beta, steps, restart=None, lr=1.0, c1=1e-4, c2=0.1):
    """Nonlinear CG by the book; returns the weights after each step and each step's beta (None on a restart)."""
    every = restart or w.numel()
    d_prev = g_prev = None
    t_prev, gtd_prev, since = 0.0, None, 0
    weights, betas = [], []
    for _ in range(steps):
        f, g = value_and_grad(loss_fn, w)
        b = None
        if d_prev is not None and since < every:
            b = beta_by_formula(beta, g, g_prev, d_prev)
        d = -g if b is None else -g + b * d_prev
        if float(g @ d) >= 0:
            b, d = None, -g
        gtd = g @ d
        t0 = lr * t_prev * gtd_prev / float(gtd) if t_prev > 0 else lr * min(1.0, 1.0 / float(g.abs().sum()))
        f_new, _, t, _ = _strong_wolfe(lambda x, t, d: value_and_grad(loss_fn, x + t * d), w, t0, d, f, g, gtd,
                                       c1=c1, c2=c2, tolerance_change=1e-9, max_ls=25)
        t = float(t)
        if t > 0 and f_new < f:
            w = w + t * d
            since = 1 if b is None else since + 1
            d_prev, g_prev, t_prev, gtd_prev = d, g, t, float(gtd)
        else:
            d_prev, t_prev = None, 0.0
        weights.append(w)
        betas.append(b)
    return weights, betas


def run_net(opt: torch.optim.Optimizer, net: nn.Module, steps: int) -> list[float]:
    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(X), Y)
        loss.backward()
        return loss

    return [float(opt.step(closure).detach()) for _ in range(steps)]


@pytest.mark.parametrize("beta, restart, seed", [("fletcher_reeves", None, 1), ("polak_ribiere", None, 6),
                                                 ("hestenes_stiefel", None, 1), ("fletcher_reeves", 2, 1)])
def test_first_steps_follow_the_formulas(beta, restart, seed):
    net = fresh_net(seed)
    expected, betas = cg_reference(net_loss, flat_weights(net), beta, steps=6, restart=restart)
    assert any(b for b in betas), "the reference took no conjugate step: the formula went untested"
    if beta == "polak_ribiere":  # seed 6: PR's beta goes negative, so the '+' (max with 0) is tested too
        assert 0.0 in betas
    if restart == 2:
        assert betas[0] is None and betas[2] is None and betas[4] is None
    opt = ConjugateGradient(net.parameters(), beta=beta, restart=restart)
    for want in expected:
        run_net(opt, net, 1)
        torch.testing.assert_close(flat_weights(net), want, **TIGHT)


def test_each_step_is_along_the_formula_direction_and_meets_strong_wolfe():
    """Independent of how the line search gets there: the move is t d_k, d_k = -g_k + beta_k d_{k-1}
    (N&W's PR+), and t satisfies the strong Wolfe conditions with the optimizer's c1, c2."""
    net = fresh_net()
    opt = ConjugateGradient(net.parameters(), beta="polak_ribiere", c1=1e-4, c2=0.1)
    state = opt.state[next(net.parameters())]
    g_prev = d_prev = None
    for _ in range(8):
        w = flat_weights(net)
        f, g = value_and_grad(net_loss, w)
        run_net(opt, net, 1)
        d, t = state["d"], state["t"]
        if d_prev is not None:
            want = -g + beta_by_formula("polak_ribiere", g, g_prev, d_prev) * d_prev
            torch.testing.assert_close(d, want, **TIGHT)
        torch.testing.assert_close(flat_weights(net) - w, t * d, **TIGHT)
        f_new, g_new = value_and_grad(net_loss, flat_weights(net))
        assert f_new <= f + 1e-4 * t * float(g @ d)
        assert abs(float(g_new @ d)) <= 0.1 * abs(float(g @ d))
        g_prev, d_prev = g, d


def test_fletcher_reeves_solves_a_5d_quadratic_in_about_n_steps():
    """Linear CG ends in n steps with exact line searches (N&W Theorem 5.1); FR with a strong-Wolfe
    search on a well-conditioned quadratic comes close."""
    gen = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64, generator=gen))
    a = q @ torch.diag(torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0], dtype=torch.float64)) @ q.T
    b = torch.randn(5, dtype=torch.float64, generator=gen)
    x = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    opt = ConjugateGradient([x], beta="fletcher_reeves")

    def closure():
        opt.zero_grad()
        loss = 0.5 * x @ a @ x - b @ x
        loss.backward()
        return loss

    for _ in range(5 + 2):
        opt.step(closure)
    assert float((a @ x.detach() - b).norm()) < 1e-6


@pytest.mark.parametrize("beta", ["fletcher_reeves", "polak_ribiere", "hestenes_stiefel"])
def test_beats_tuned_sgd_on_a_tanh_network(beta):
    steps = 40
    best_sgd = min(run_net(torch.optim.SGD((net := fresh_net()).parameters(), lr=lr), net, steps + 1)[-1]
                   for lr in (0.03, 0.1, 0.3, 1.0, 3.0))
    net = fresh_net()
    cg = run_net(ConjugateGradient(net.parameters(), beta=beta), net, steps + 1)[-1]
    assert cg < best_sgd / 10


def test_resumes_exactly_from_a_state_dict_even_through_torch_save():
    straight = fresh_net()
    run_net(ConjugateGradient(straight.parameters()), straight, 6)

    for through_file in (False, True):
        net = fresh_net()
        first = ConjugateGradient(net.parameters())
        run_net(first, net, 3)
        saved = copy.deepcopy(first.state_dict())
        if through_file:
            buffer = io.BytesIO()
            torch.save(saved, buffer)
            buffer.seek(0)
            saved = torch.load(buffer, weights_only=True)
        second = ConjugateGradient(net.parameters())
        second.load_state_dict(saved)
        run_net(second, net, 3)
        for a, b in zip(straight.parameters(), net.parameters(), strict=True):
            assert torch.equal(a, b)


def test_a_parameter_without_a_gradient_stays_and_the_rest_still_learns():
    net = fresh_net()
    unused = nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = ConjugateGradient([*net.parameters(), unused])
    losses = run_net(opt, net, 10)
    assert torch.equal(unused.detach(), torch.ones(4, dtype=torch.float64))
    assert losses[-1] < losses[0] / 2


def test_a_failed_line_search_does_not_move_and_restarts_along_minus_g():
    """A loss that only rises away from the start point: no lower point exists along any direction."""
    x = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = ConjugateGradient([x], max_ls=3)

    def closure():  # a gradient that lies: it says "descend" but every move goes up
        opt.zero_grad()
        loss = (x - torch.tensor([1.0, -2.0], dtype=torch.float64)).abs().sum()
        loss.backward()
        x.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
        return loss

    opt.step(closure)
    assert torch.equal(x.detach(), torch.tensor([1.0, -2.0], dtype=torch.float64))
    state = opt.state[x]
    assert state["t"] == 0.0 and "d" not in state


def test_one_group_only_and_options_checked():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="parameter groups"):
        ConjugateGradient([{"params": [a]}, {"params": [b]}])
    with pytest.raises(ValueError, match="beta"):
        ConjugateGradient([a], beta="dai_yuan")
    with pytest.raises(ValueError, match="Wolfe"):
        ConjugateGradient([a], c1=0.5, c2=0.1)
    with pytest.raises(ValueError, match="restart"):
        ConjugateGradient([a], restart=0)
    assert ConjugateGradient([a]).param_groups[0]["lr"] == 1.0
