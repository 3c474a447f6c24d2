"""ScaledConjugateGradient against Møller's (1993) steps 1-9, written out here on a flat float64
vector, sharing nothing with the optimizer.

The problem: a 2-3-1 tanh network's mean squared error on 8 fixed rows whose targets another
2-3-1 tanh network made; its four parameter tensors are unflattened from the vector by hand,
in nn.Sequential's parameter order. Started from weights three times torch's default, the first
iterations include rejected ones and an indefinite Hessian, so every branch is compared.
"""
import copy
import io
import math

import pytest
import torch
from torch import nn

from app.ml.optim.scaled_conjugate_gradient import ScaledConjugateGradient
from tests.ml.conjugate_problem import X, Y, flat_weights, fresh_net, net_loss, value_and_grad

# s_k is a difference of gradients over a step of sigma = 5e-5: the last-bit rounding of
# w_k + sigma_k p_k (weights near 2) is a 1e-11 relative change in s_k, so two correct float64
# transcriptions part by ~1e-11 after a dozen iterations; a wrong formula parts by far more.
TIGHT = {"rtol": 1e-8, "atol": 1e-9}


def scg_reference(loss_fn, w, iterations, sigma=5e-5, lambda_1=5e-7):
    """Møller (1993), the algorithm's steps as printed; returns the weights after each iteration
    and which branches it took."""
    n = w.numel()
    lam, lam_bar = lambda_1, 0.0  # step 1
    e, grad = value_and_grad(loss_fn, w)
    p = r = -grad
    success = True
    weights, branches = [], []
    for k in range(1, iterations + 1):
        p_sq = float(p @ p)
        if success:  # step 2
            sigma_k = sigma / math.sqrt(p_sq)
            s = (value_and_grad(loss_fn, w + sigma_k * p)[1] - value_and_grad(loss_fn, w)[1]) / sigma_k
            delta = float(p @ s)
        s = s + (lam - lam_bar) * p  # step 3
        delta = delta + (lam - lam_bar) * p_sq
        indefinite = delta <= 0
        if indefinite:  # step 4
            s = s + (lam - 2 * delta / p_sq) * p
            lam_bar = 2 * (lam - delta / p_sq)
            delta = -delta + lam * p_sq
            lam = lam_bar
        mu = float(p @ r)  # step 5
        alpha = mu / delta
        e_new, grad_new = value_and_grad(loss_fn, w + alpha * p)
        comparison = 2 * delta * (e - e_new) / mu ** 2  # step 6
        success = comparison >= 0
        if success:  # step 7
            w = w + alpha * p
            r_new = -grad_new
            lam_bar = 0.0
            if k % n == 0:
                p = r_new
            else:
                beta = (float(r_new @ r_new) - float(r_new @ r)) / mu
                p = r_new + beta * p
            r, e = r_new, e_new
            if comparison >= 0.75:
                lam = lam / 4
        else:
            lam_bar = lam
        if comparison < 0.25:  # step 8
            lam = lam + delta * (1 - comparison) / p_sq
        weights.append(w)
        branches.append(("success" if success else "rejected") + (", indefinite" if indefinite else ""))
    return weights, branches


def run_net(opt: torch.optim.Optimizer, net: nn.Module, steps: int) -> list[float]:
    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(X), Y)
        loss.backward()
        return loss

    return [float(opt.step(closure).detach()) for _ in range(steps)]


def test_iterations_follow_moller_step_by_step_every_branch_included():
    net = fresh_net(scale=3.0)
    expected, branches = scg_reference(net_loss, flat_weights(net), iterations=12)
    assert any("rejected" in b for b in branches) and any("success" in b for b in branches)
    assert any("indefinite" in b for b in branches)
    opt = ScaledConjugateGradient(net.parameters())
    for want in expected:
        run_net(opt, net, 1)
        torch.testing.assert_close(flat_weights(net), want, **TIGHT)


def test_restarts_along_r_every_n_iterations():
    """With one parameter N = 1: every successful iteration restarts, p_{k+1} = r_{k+1}."""
    x = nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    opt = ScaledConjugateGradient([x])

    def closure():
        opt.zero_grad()
        loss = (x ** 4).sum() + (x ** 2).sum()
        loss.backward()
        return loss

    for _ in range(4):
        opt.step(closure)
        state = opt.state[x]
        assert state["k"] > 1
        if state["success"]:
            xv = x.detach()
            torch.testing.assert_close(state["p"], -(4 * xv ** 3 + 2 * xv), **TIGHT)


def test_converges_on_a_5d_quadratic():
    gen = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64, generator=gen))
    a = q @ torch.diag(torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0], dtype=torch.float64)) @ q.T
    b = torch.randn(5, dtype=torch.float64, generator=gen)
    x = nn.Parameter(torch.zeros(5, dtype=torch.float64))
    opt = ScaledConjugateGradient([x])

    def closure():
        opt.zero_grad()
        loss = 0.5 * x @ a @ x - b @ x
        loss.backward()
        return loss

    for _ in range(5 + 2):
        opt.step(closure)
    assert float((a @ x.detach() - b).norm()) < 1e-6


def test_beats_tuned_sgd_on_a_tanh_network():
    steps = 40
    best_sgd = min(run_net(torch.optim.SGD((net := fresh_net()).parameters(), lr=lr), net, steps + 1)[-1]
                   for lr in (0.03, 0.1, 0.3, 1.0, 3.0))
    net = fresh_net()
    scg = run_net(ScaledConjugateGradient(net.parameters()), net, steps + 1)[-1]
    assert scg < best_sgd / 10


@pytest.mark.parametrize("split", [3, 9])
def test_resumes_exactly_from_a_state_dict_even_through_torch_save(split):
    """split 9 lands right after a rejected iteration (the 9th, see the test above), whose s_k and
    delta_k the next one reuses."""
    total = split + 3
    straight = fresh_net(scale=3.0)
    run_net(ScaledConjugateGradient(straight.parameters()), straight, total)

    for through_file in (False, True):
        net = fresh_net(scale=3.0)
        first = ScaledConjugateGradient(net.parameters())
        run_net(first, net, split)
        saved = copy.deepcopy(first.state_dict())
        if through_file:
            buffer = io.BytesIO()
            torch.save(saved, buffer)
            buffer.seek(0)
            saved = torch.load(buffer, weights_only=True)
        second = ScaledConjugateGradient(net.parameters())
        second.load_state_dict(saved)
        run_net(second, net, total - split)
        for a, b in zip(straight.parameters(), net.parameters(), strict=True):
            assert torch.equal(a, b)


def test_a_parameter_without_a_gradient_stays_and_the_rest_still_learns():
    net = fresh_net()
    unused = nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = ScaledConjugateGradient([*net.parameters(), unused])
    losses = run_net(opt, net, 10)
    assert torch.equal(unused.detach(), torch.ones(4, dtype=torch.float64))
    assert losses[-1] < losses[0] / 2


def test_lr_is_there_for_the_loop_and_changes_nothing():
    nets = [fresh_net(), fresh_net()]
    opts = [ScaledConjugateGradient(n.parameters()) for n in nets]
    opts[1].param_groups[0]["lr"] = 0.01  # what a schedule or a rollback would do
    for opt, net in zip(opts, nets, strict=True):
        run_net(opt, net, 5)
    assert torch.equal(flat_weights(nets[0]), flat_weights(nets[1]))


def test_one_group_only_and_options_checked():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="parameter groups"):
        ScaledConjugateGradient([{"params": [a]}, {"params": [b]}])
    with pytest.raises(ValueError, match="sigma"):
        ScaledConjugateGradient([a], sigma=0)
    with pytest.raises(ValueError, match="lambda_1"):
        ScaledConjugateGradient([a], lambda_1=-1.0)
    group = ScaledConjugateGradient([a]).param_groups[0]
    assert (group["lr"], group["sigma"], group["lambda_1"]) == (1.0, 5e-5, 5e-7)
