"""The full-batch loss as a function of one flat vector of the parameters: what Newton and
Levenberg-Marquardt differentiate twice (torch.func).

The flat vector holds the optimizer's parameters in its order, each flattened. Derivatives are
reverse over reverse: forward-mode AD is missing for the CPU's LSTM kernel and for every
fused attention kernel, and attention runs on its plain ("math") kernel here, the only one
with a second derivative. Batch norm (which updates its running statistics in place) and
dropout (a new mask at every evaluation) are refused by the pre-flight (app/ml/optim/checks.py).
"""
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, vjp, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

# The vectorized derivatives run in chunks of basis vectors: each carries its own copy of the
# batch's activations, and a chunk is kept at about this many floats (512 MiB in fp32).
CHUNK_FLOATS = 2**27

Penalty = Callable[[dict[str, torch.Tensor]], torch.Tensor | None]


class Objective:
    """loss(v) = loss_fn(model(x; v), y) + penalty(v), and its derivatives in v."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 params: list[torch.Tensor], penalty: Penalty | None = None):
        names = {id(p): n for n, p in model.named_parameters()}
        self.model, self.loss_fn, self.x, self.y, self.params = model, loss_fn, x, y, params
        self.names = [names[id(p)] for p in params]
        self.penalty = penalty or (lambda _: None)
        self._activations: int | None = None

    # ---- the flat vector ----------------------------------------------------------------

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    @torch.no_grad()
    def assign(self, v: torch.Tensor) -> None:
        """Write v into the parameters."""
        for p, piece in zip(self.params, self._pieces(v)):
            p.copy_(piece)

    def _pieces(self, v: torch.Tensor) -> list[torch.Tensor]:
        sizes = [p.numel() for p in self.params]
        return [piece.view_as(p) for p, piece in zip(self.params, torch.split(v.to(self.params[0].dtype), sizes))]

    def _named(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self._pieces(v)))

    # ---- the functions --------------------------------------------------------------------

    def outputs(self, v: torch.Tensor) -> torch.Tensor:
        with sdpa_kernel(SDPBackend.MATH):
            return functional_call(self.model, self._named(v), (self.x,))

    def loss(self, v: torch.Tensor) -> torch.Tensor:
        """The data loss plus the l1/l2 penalty, as the training loop computes it."""
        total = self.loss_fn(self.outputs(v), self.y)
        extra = self.penalty(self._named(v))
        return total if extra is None else total + extra

    def residuals(self, v: torch.Tensor) -> torch.Tensor:
        """outputs - targets, one entry per row and output (the mse loss is their mean square)."""
        return (self.outputs(v) - self.y).reshape(-1)

    # ---- the derivatives --------------------------------------------------------------------

    def gradient_and_hessian(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The gradient (n,) and the exact Hessian (n, n) of loss at v."""
        with sdpa_kernel(SDPBackend.MATH):
            g, row_of = vjp(grad(self.loss), v)  # row_of(e_i): row i of the Hessian
            return g.detach(), self._stack(lambda e: row_of(e)[0], v.numel(), v)

    def jacobian(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The residuals e (m,) and their Jacobian J (m, n) at v."""
        with sdpa_kernel(SDPBackend.MATH):
            e, row_of = vjp(self.residuals, v)  # row_of(e_i): row i of J
            return e.detach(), self._stack(lambda u: row_of(u)[0], e.numel(), v)

    def _stack(self, row: Callable[[torch.Tensor], torch.Tensor], rows: int, v: torch.Tensor) -> torch.Tensor:
        """The rows row(e_0), ..., row(e_{rows-1}) in one (rows, n) matrix, a chunk at a time."""
        chunk = max(1, min(rows, CHUNK_FLOATS // (4 * self._activation_floats(v) + v.numel())))
        out = torch.empty(rows, v.numel(), dtype=v.dtype, device=v.device)
        for start in range(0, rows, chunk):
            k = min(chunk, rows - start)
            basis = torch.zeros(k, rows, dtype=v.dtype, device=v.device)
            basis[torch.arange(k), torch.arange(start, start + k)] = 1
            out[start:start + k] = vmap(row)(basis)
        return out

    def _activation_floats(self, v: torch.Tensor) -> int:
        """Floats of one forward pass's layer outputs (what each basis vector's backward re-creates)."""
        if self._activations is None:
            total = [self.x.numel()]
            leaves = [m for m in self.model.modules() if not list(m.children())]
            hooks = [m.register_forward_hook(lambda _m, _i, out: total.append(out.numel())
                                             if isinstance(out, torch.Tensor) else None) for m in leaves]
            try:
                with torch.no_grad():
                    self.outputs(v)
            finally:
                for h in hooks:
                    h.remove()
            self._activations = sum(total)
        return self._activations
