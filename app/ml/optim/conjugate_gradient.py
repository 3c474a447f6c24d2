"""Nonlinear conjugate gradient with a strong-Wolfe line search.

Source: Nocedal & Wright, Numerical Optimization, 2nd ed. (2006), section 5.2 (Algorithm 5.4
and its variants) for the direction, section 3.5 for the line search and its first trial step.

One ``step(closure)`` is one iteration k:

    d_k = -g_k + beta_k d_{k-1}          (d_k = -g_k on a restart)
    x_{k+1} = x_k + t_k d_k              (t_k from a strong-Wolfe line search along d_k)

with, y_k = g_k - g_{k-1}:

    fletcher_reeves    beta = g_k.g_k / g_{k-1}.g_{k-1}                  (5.41a)
    polak_ribiere      beta = max(0, g_k.y_k / g_{k-1}.g_{k-1})          (PR+, 5.44-5.45)
    hestenes_stiefel   beta = g_k.y_k / d_{k-1}.y_k; restart if d_{k-1}.y_k = 0   (5.46)

Restarts (d_k = -g_k): on the first step; every ``restart`` steps since the last restart (None:
n, the number of parameters, N&W's choice in 5.2 "Practical versions"); whenever d_k is not a
descent direction (g_k.d_k >= 0); after a line search that did not lower the loss.
"""
import math

import torch
from torch.optim import Optimizer

# torch's own strong-Wolfe search, the one torch.optim.LBFGS(line_search_fn="strong_wolfe") runs:
# N&W Algorithms 3.5/3.6 with cubic interpolation. It is private, so it is imported here and
# nowhere else; if torch moves it, this is the one line to change.
from torch.optim.lbfgs import _strong_wolfe

from app.ml.optim.flat import add_flat_, clone_params, flat_grad, numel, set_params_

BETAS = ("fletcher_reeves", "polak_ribiere", "hestenes_stiefel")


class ConjugateGradient(Optimizer):
    """Nonlinear conjugate gradient (Nocedal & Wright 2nd ed., 5.2) for one group of parameters.

    Args:
        lr: scales the first trial step of every line search (default 1.0: N&W's trial steps
            as they are). The line search then picks the step; lr moves where it starts.
        beta: "polak_ribiere" (default: PR+, which N&W 5.2 report as the more robust in practice),
            "fletcher_reeves" or "hestenes_stiefel"; the formulas are in the module docstring.
        restart: restart along -g every this many steps; None (default) for every n steps,
            n the number of parameters (N&W 5.2).
        c1, c2: the strong Wolfe conditions f(x + t d) <= f(x) + c1 t g.d and
            |g(x + t d).d| <= c2 |g.d|; defaults 1e-4 (N&W 3.1) and 0.1, N&W's value for
            conjugate gradient (3.1; FR needs c2 < 1/2 for descent, Lemma 5.6).
        max_ls: at most this many loss evaluations per line search (default 25, torch's LBFGS).
        tolerance_change: the line search stops when its bracket is shorter than this, in
            parameter units (default 1e-9, torch's LBFGS).

    The first trial step of a line search is N&W eq. 3.60, t0 = t_{k-1} (g_{k-1}.d_{k-1}) / (g_k.d_k),
    the first-order change of the last step kept; on the first step and after a failed line
    search (no last step to scale from) it is min(1, 1/|g|_1), as torch's LBFGS starts. Either
    is multiplied by lr.

    ``step(closure)``: the closure zeroes the gradients, computes the loss, backpropagates and
    returns the loss, as for torch.optim.LBFGS. Returns the loss at the weights the step starts
    from. The state (last direction, gradient, step, counters) is in ``self.state`` of the first
    parameter as tensors and python numbers, so ``state_dict`` round-trips and a loaded optimizer
    continues exactly.
    """

    def __init__(self, params, lr=1.0, beta="polak_ribiere", restart=None, c1=1e-4, c2=0.1, max_ls=25,
                 tolerance_change=1e-9):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, not {lr}")
        if beta not in BETAS:
            raise ValueError(f"beta must be one of {', '.join(BETAS)}, not {beta!r}")
        if restart is not None and (isinstance(restart, bool) or not isinstance(restart, int) or restart < 1):
            raise ValueError(f"restart must be None or an integer >= 1, not {restart!r}")
        if not 0 < c1 < c2 < 1:
            raise ValueError(f"the Wolfe constants need 0 < c1 < c2 < 1, not c1={c1}, c2={c2}")
        if max_ls < 1:
            raise ValueError(f"max_ls must be >= 1, not {max_ls}")
        defaults = dict(lr=lr, beta=beta, restart=restart, c1=c1, c2=c2, max_ls=max_ls,
                        tolerance_change=tolerance_change)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("ConjugateGradient doesn't support per-parameter options (parameter groups)")

    @torch.no_grad()
    def step(self, closure):  # type: ignore[override]
        closure = torch.enable_grad()(closure)  # called from under no_grad, it must still backpropagate
        group = self.param_groups[0]  # read each step: schedulers and load_state_dict change it
        params = group["params"]
        state = self.state[params[0]]  # one state for the whole vector, kept on the first parameter like LBFGS

        orig_loss = closure()
        loss = float(orig_loss)
        if not math.isfinite(loss):  # no line search from here: the training loop's divergence guard acts
            return orig_loss
        g = flat_grad(params)
        state["n_iter"] = state.get("n_iter", 0) + 1

        d, restarted = self._direction(group, state, g, numel(params))
        gtd = g.dot(d)
        if float(gtd) >= 0:  # only when g = 0 (d = -g otherwise): a stationary point, nothing to do
            return orig_loss

        t_prev = state.get("t", 0.0)
        if t_prev > 0:
            t0 = group["lr"] * t_prev * state["gtd"] / float(gtd)  # N&W (3.60)
        else:
            t0 = group["lr"] * min(1.0, 1.0 / float(g.abs().sum()))

        start = clone_params(params)

        def evaluate(_x, t, direction):  # the loss and gradient at start + t d; the weights put back
            add_flat_(params, direction, float(t))
            f = float(closure())
            grad = flat_grad(params)
            set_params_(params, start)
            return f, grad

        f_new, _, t, evals = _strong_wolfe(evaluate, start, t0, d, loss, g, gtd, c1=group["c1"], c2=group["c2"],
                                           tolerance_change=group["tolerance_change"], max_ls=group["max_ls"])
        t = float(t)
        state["func_evals"] = state.get("func_evals", 0) + 1 + evals
        if t > 0 and f_new < loss:
            add_flat_(params, d, t)  # the same operation evaluate() did, so the weights it measured
            state["d"] = d
            state["g_prev"] = g
            state["t"] = t
            state["gtd"] = float(gtd)
            state["since_restart"] = 1 if restarted else state["since_restart"] + 1
        else:  # no lower point found: stay, and start again from -g next step
            for key in ("d", "g_prev", "gtd", "since_restart"):
                state.pop(key, None)
            state["t"] = 0.0
        return orig_loss

    @staticmethod
    def _direction(group, state, g, n):
        """d_k and whether it is a restart (-g_k)."""
        d_prev = state.get("d")
        every = group["restart"] if group["restart"] is not None else n
        if d_prev is None or state["since_restart"] >= every:
            return g.neg(), True
        g_prev = state["g_prev"]
        kind = group["beta"]
        if kind == "fletcher_reeves":
            beta = float(g.dot(g)) / float(g_prev.dot(g_prev))
        elif kind == "polak_ribiere":
            beta = max(0.0, float(g.dot(g - g_prev)) / float(g_prev.dot(g_prev)))
        else:  # hestenes_stiefel
            y = g - g_prev
            denominator = float(d_prev.dot(y))
            if denominator == 0:
                return g.neg(), True
            beta = float(g.dot(y)) / denominator
        d = g.neg().add_(d_prev, alpha=beta)
        if float(g.dot(d)) >= 0:  # not a descent direction
            return g.neg(), True
        return d, False
