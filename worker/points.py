"""Metric points whose values stay tensors on the device until a flush reads them all at once."""
from dataclasses import dataclass, field

import torch


@dataclass
class Pending:
    """Metric points whose values are still tensors on the device: read back once per flush."""

    points: list[dict] = field(default_factory=list)

    def materialize(self) -> list[dict]:
        tensors = [t for p in self.points for t in _tensors(p)]
        floats = iter(torch.stack(tensors).float().tolist()) if tensors else iter(())
        out = [_fill(p, floats) for p in self.points]
        self.points = []
        return out


def _tensors(point: dict) -> list[torch.Tensor]:
    out = []
    for v in point.values():
        if isinstance(v, torch.Tensor):
            # Losses and norms arrive 0-dim and detached: leaving them as they are saves two
            # tensor ops a point, most of a flush's time when every step logs a point.
            out.append(v if v.ndim == 0 and not v.requires_grad else v.detach().reshape(()))
        elif isinstance(v, dict):
            out.extend(_tensors(v))
    return out


def _fill(point: dict, floats) -> dict:
    """The point with each tensor replaced, in _tensors order, by its value."""
    return {k: next(floats) if isinstance(v, torch.Tensor) else _fill(v, floats) if isinstance(v, dict)
            else v for k, v in point.items()}
