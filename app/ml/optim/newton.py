"""Newton's method on the exact Hessian of the full-batch loss: θ <- θ - lr (H + λI)^{-1} ∇L.

The Hessian comes from torch.func (app/ml/optim/objective.py) and the solve is a Cholesky in
float64. λ is adapted by app/ml/optim/damping.py: raised when H + λI is not positive definite
or the step does not lower the loss, lowered after each step that does; near a minimum with a
positive definite Hessian λ shrinks towards 0 and the step becomes the pure Newton step, whose
convergence is quadratic. With ``line_search: "backtracking"`` (the default) a step is first
shortened by halving until it meets Armijo's sufficient-decrease condition (Nocedal & Wright,
Numerical Optimization, 2nd ed., Algorithm 3.1, c1 = 1e-4, contraction 0.5) before a larger
λ is tried.

Memory: the Hessian is n² floats (plus its float64 copy); the pre-flight refuses networks
whose Hessian does not fit (app/ml/optim/checks.py).
"""
import torch

from app.ml.optim import damping
from app.ml.optim.objective import Objective


class Newton(torch.optim.Optimizer):
    """Options: ``lr`` the step's scale (1: the Newton step); ``damping`` λ's first value (1e-3,
    trainlm's mu), ``damping_dec`` 0.1, ``damping_inc`` 10, ``damping_max`` 1e10 (trainlm's);
    ``line_search`` "backtracking" or None; ``c1`` 1e-4 and ``max_backtracks`` 10 for it."""

    def __init__(self, params, lr: float = 1.0, damping: float = 1e-3, damping_dec: float = 0.1,
                 damping_inc: float = 10.0, damping_max: float = 1e10, line_search: str | None = "backtracking",
                 c1: float = 1e-4, max_backtracks: int = 10):
        defaults = dict(lr=lr, damping=damping, damping_dec=damping_dec, damping_inc=damping_inc,
                        damping_max=damping_max, line_search=line_search, c1=c1, max_backtracks=max_backtracks)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("newton takes one parameter group")

    def step(self, objective: Objective) -> None:  # type: ignore[override]
        group = self.param_groups[0]
        state = self.state[group["params"][0]]
        lam = state.get("damping", group["damping"])
        x = objective.flat()
        with torch.no_grad():
            f0 = float(objective.loss(x))
        g, hessian = objective.gradient_and_hessian(x)
        g64 = g.to(torch.float64)

        def take(d: torch.Tensor) -> bool:
            t, slope = group["lr"], float(g64 @ d)
            tries = 1 + (group["max_backtracks"] if group["line_search"] == "backtracking" else 0)
            for _ in range(tries):
                candidate = x + (t * d).to(x.dtype)
                with torch.no_grad():
                    f = float(objective.loss(candidate))
                enough = f <= f0 + group["c1"] * t * slope if group["line_search"] else f < f0
                if enough and f < f0:
                    objective.assign(candidate)
                    return True
                t *= 0.5
            return False

        lam, _ = damping.adapt(hessian, g, lam, group["damping_dec"], group["damping_inc"],
                               group["damping_max"], take)
        state["damping"] = lam
