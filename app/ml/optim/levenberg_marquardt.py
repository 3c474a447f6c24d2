"""Levenberg-Marquardt for the mse loss, as MATLAB's trainlm (Hagan & Menhaj 1994):
θ <- θ - (JᵀJ + μI)^{-1} Jᵀe, with e the residuals (outputs - targets, one per row and output)
and J their Jacobian. A step is taken only when it lowers the loss; μ adapts by
app/ml/optim/damping.py with trainlm's defaults: ``mu`` 1e-3, ``mu_dec`` 0.1, ``mu_inc`` 10,
``mu_max`` 1e10. trainlm stops training once μ passes mu_max; here that step is skipped (the
weights stay where they are) and the next step tries again at mu_max.

Memory: J is rows x outputs x n floats and JᵀJ n² (plus float64 copies); the pre-flight
refuses what does not fit (app/ml/optim/checks.py).
"""
import torch

from app.ml.optim import damping
from app.ml.optim.objective import Objective


class LevenbergMarquardt(torch.optim.Optimizer):
    """``lr`` is kept at 1 in the group for the training loop's schedule code; LM does not use it."""

    def __init__(self, params, mu: float = 1e-3, mu_dec: float = 0.1, mu_inc: float = 10.0, mu_max: float = 1e10):
        super().__init__(params, dict(lr=1.0, mu=mu, mu_dec=mu_dec, mu_inc=mu_inc, mu_max=mu_max))
        if len(self.param_groups) != 1:
            raise ValueError("levenberg_marquardt takes one parameter group")

    def step(self, objective: Objective) -> None:  # type: ignore[override]
        group = self.param_groups[0]
        state = self.state[group["params"][0]]
        x = objective.flat()
        e, jac = objective.jacobian(x)
        with torch.no_grad():
            f0 = float(objective.loss(x))
        j64 = jac.to(torch.float64)

        def take(d: torch.Tensor) -> bool:
            candidate = x + d.to(x.dtype)
            with torch.no_grad():
                better = float(objective.loss(candidate)) < f0
            if better:
                objective.assign(candidate)
            return better

        state["mu"], _ = damping.adapt(j64.T @ j64, j64.T @ e.to(torch.float64), state.get("mu", group["mu"]),
                                       group["mu_dec"], group["mu_inc"], group["mu_max"], take)
