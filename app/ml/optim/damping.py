"""The damping rule Newton and Levenberg-Marquardt share: solve (A + λI) d = -b, try the step,
and adapt λ as MATLAB's trainlm adapts mu (Hagan & Menhaj 1994): a step that lowers the loss is
taken and λ shrinks (times ``dec``); a step that does not, or a matrix that is not positive
definite at this λ, is retried at λ times ``inc``, until λ passes ``max``: then no step is taken.
A small λ gives the (Gauss-)Newton step, a large one a short gradient-descent step.
"""
from collections.abc import Callable

import torch

SMALLEST = 1e-20  # trainlm's floor for mu: λ never reaches 0, so it can always grow again


def solve(a: torch.Tensor, b: torch.Tensor, lam: float) -> torch.Tensor | None:
    """-(A + λI)^{-1} b by Cholesky, in float64; None when A + λI is not positive definite."""
    shifted = a.to(torch.float64) + lam * torch.eye(a.shape[0], dtype=torch.float64, device=a.device)
    factor, info = torch.linalg.cholesky_ex(shifted)
    if int(info) != 0:
        return None
    return -torch.cholesky_solve(b.to(torch.float64).unsqueeze(1), factor).squeeze(1)


def adapt(a: torch.Tensor, b: torch.Tensor, lam: float, dec: float, inc: float, most: float,
          take: Callable[[torch.Tensor], bool]) -> tuple[float, bool]:
    """Solve and try steps until ``take(d)`` accepts one; returns (the next λ, whether a step was taken)."""
    while lam <= most:
        d = solve(a, b, lam)
        if d is not None and take(d):
            return max(lam * dec, SMALLEST), True
        lam *= inc
    return most, False
