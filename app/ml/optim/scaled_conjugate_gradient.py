"""Scaled conjugate gradient: conjugate directions with a Levenberg-Marquardt-style scale in
place of a line search.

Source: M. F. Møller, "A scaled conjugate gradient algorithm for fast supervised learning",
Neural Networks 6 (1993) 525-533, the algorithm's steps 1-9, transcribed in ``step`` (the step
numbers are in the comments). r_k = -E'(w_k) is the steepest descent direction, p_k the search
direction, s_k ~ E''(w_k) p_k by a difference of gradients, lambda_k the scale and lambda_bar_k the
part of it s_k and delta_k already include.
"""
import math

import torch
from torch.optim import Optimizer

from app.ml.optim.flat import add_flat_, clone_params, flat_grad, numel, set_params_


class ScaledConjugateGradient(Optimizer):
    """Møller's scaled conjugate gradient (1993) for one group of parameters.

    Args:
        sigma: the finite-difference scale, sigma_k = sigma / |p_k| (default 5e-5, MATLAB
            trainscg's; Møller asks 0 < sigma <= 1e-4).
        lambda_1: the first scale of the Hessian's stand-in (default 5e-7, trainscg's;
            Møller asks 0 < lambda_1 <= 1e-6).

    The group also has ``lr`` = 1.0, which SCG does not use: Møller's method sets its own step
    alpha_k = mu_k / delta_k. It is there because the training loop's schedulers and rollbacks
    scale every group's lr; doing so changes nothing here.

    ``step(closure)`` is one of Møller's iterations, a rejected one (the error would rise, so the
    weights stay and lambda grows) included. The closure zeroes the gradients, computes the loss,
    backpropagates and returns the loss, as for torch.optim.LBFGS; it is called at the current
    weights (the loss returned), at w_k + sigma_k p_k after a successful iteration, and at
    w_k + alpha_k p_k. The state (k, success, lambda, lambda_bar, p and, after a rejected
    iteration, s and delta) is in ``self.state`` of the first parameter as tensors and python
    numbers, so ``state_dict`` round-trips and a loaded optimizer continues exactly.
    """

    def __init__(self, params, sigma=5e-5, lambda_1=5e-7):
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, not {sigma}")
        if not lambda_1 > 0:
            raise ValueError(f"lambda_1 must be > 0, not {lambda_1}")
        super().__init__(params, dict(lr=1.0, sigma=sigma, lambda_1=lambda_1))
        if len(self.param_groups) != 1:
            raise ValueError("ScaledConjugateGradient doesn't support per-parameter options (parameter groups)")

    @torch.no_grad()
    def step(self, closure):  # type: ignore[override]
        closure = torch.enable_grad()(closure)  # called from under no_grad, it must still backpropagate
        group = self.param_groups[0]
        params = group["params"]
        state = self.state[params[0]]  # one state for the whole vector, kept on the first parameter like LBFGS

        orig_loss = closure()
        error = float(orig_loss)  # E(w_k)
        r = flat_grad(params).neg_()  # r_k = -E'(w_k)
        if not bool(r.any()):  # step 9: r_k = 0, a minimum; Møller stops here
            return orig_loss

        if "p" not in state:  # step 1
            state.update(k=1, success=True, p=r.clone(), lambda_bar=0.0)
            state["lambda"] = group["lambda_1"]
        k, p = state["k"], state["p"]
        lam, lam_bar = state["lambda"], state["lambda_bar"]
        p_sq = float(p.dot(p))
        start = clone_params(params)

        if state["success"]:  # step 2: second order information
            sigma_k = group["sigma"] / math.sqrt(p_sq)
            add_flat_(params, p, sigma_k)
            closure()
            s = flat_grad(params).add_(r).div_(sigma_k)  # (E'(w_k + sigma_k p_k) - E'(w_k)) / sigma_k
            set_params_(params, start)
            delta = float(p.dot(s))
        else:  # a rejected iteration left s_k and delta_k (scaled by lambda_bar_k) to reuse
            s, delta = state["s"], state["delta"]

        s = s.add(p, alpha=lam - lam_bar)  # step 3: scale s_k
        delta += (lam - lam_bar) * p_sq
        if delta <= 0:  # step 4: make the Hessian positive definite
            s.add_(p, alpha=lam - 2 * delta / p_sq)
            lam_bar = 2 * (lam - delta / p_sq)
            delta = -delta + lam * p_sq
            lam = lam_bar

        mu = float(p.dot(r))  # step 5: the step size
        alpha = mu / delta
        add_flat_(params, p, alpha)
        error_new = float(closure())  # E(w_k + alpha_k p_k), and its gradient in .grad
        comparison = 2 * delta * (error - error_new) / mu ** 2  # step 6: Delta_k

        if comparison >= 0:  # step 7: a successful reduction in error; w_{k+1} = w_k + alpha_k p_k stays
            r_new = flat_grad(params).neg_()  # r_{k+1}, from the evaluation just made
            lam_bar = 0.0
            state["success"] = True
            if k % numel(params) == 0:  # restart every N steps
                state["p"] = r_new
            else:
                beta = (float(r_new.dot(r_new)) - float(r_new.dot(r))) / mu
                state["p"] = r_new.add_(p, alpha=beta)
            if comparison >= 0.75:
                lam = lam / 4
            state.pop("s", None)
            state.pop("delta", None)
        else:  # a reduction in error is not possible: back to w_k, same p_k, s_k and delta_k kept
            set_params_(params, start)
            lam_bar = lam
            state["success"] = False
            state["s"] = s
            state["delta"] = delta
        if comparison < 0.25:  # step 8: increase the scale
            lam = lam + delta * (1 - comparison) / p_sq

        state["k"] = k + 1  # step 9
        state["lambda"] = lam
        state["lambda_bar"] = lam_bar
        return orig_loss
