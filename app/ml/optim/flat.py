"""The parameters of a model as one flat vector, for the methods that work on the whole
weight vector (conjugate gradient, scaled conjugate gradient).

The order is the order of the parameter list, each tensor flattened row-major, the same
order in every function here, so a vector built by ``flat_grad`` can be added back with
``add_flat_``. Real (not complex) dense parameters only.
"""
from collections.abc import Sequence

import torch
from torch import Tensor


def numel(params: Sequence[Tensor]) -> int:
    """The number of scalar parameters: the length of every flat vector."""
    return sum(p.numel() for p in params)


def flat_grad(params: Sequence[Tensor]) -> Tensor:
    """A new vector holding every gradient; a parameter without one (unused by the loss)
    contributes zeros, as in torch.optim.LBFGS."""
    views = [p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()) for p in params]
    return torch.cat(views)


def add_flat_(params: Sequence[Tensor], vector: Tensor, alpha: float) -> None:
    """params += alpha * vector, in place (under no_grad, as in an optimizer's step)."""
    offset = 0
    for p in params:
        n = p.numel()
        p.add_(vector[offset:offset + n].view_as(p), alpha=alpha)
        offset += n
    if offset != vector.numel():
        raise ValueError(f"a vector of {vector.numel()} values for {offset} parameters")


def clone_params(params: Sequence[Tensor]) -> list[Tensor]:
    """A copy of the weights, to come back to exactly after a trial point."""
    return [p.detach().clone() for p in params]


def set_params_(params: Sequence[Tensor], saved: Sequence[Tensor]) -> None:
    """Put back the weights ``clone_params`` saved (bit for bit: a copy, not a subtraction)."""
    for p, s in zip(params, saved, strict=True):
        p.copy_(s)
