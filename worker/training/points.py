"""Metric points whose values stay tensors on the device until a flush reads them all at once."""
from dataclasses import dataclass, field

import torch


@dataclass
class Pending:
    """Metric points whose values are still tensors on the device: read back once per flush.

    A step point is kept as an (epoch, step, loss, lr) tuple until the flush builds its dict:
    with a point every step, building and walking a dict per point cost about 1 us of a
    small model's 70-90 us step.
    """

    points: list[dict | tuple] = field(default_factory=list)

    def add_step(self, epoch: int, step: int, loss: torch.Tensor, lr: float) -> None:
        self.points.append((epoch, step, loss, lr))

    def drop_from(self, step: int) -> None:
        """Forgets the points of ``step`` and after."""
        self.points = [p for p in self.points if (p[1] if isinstance(p, tuple) else p["step"]) < step]

    def materialize(self) -> list[dict]:
        tensors = []
        for p in self.points:
            if isinstance(p, tuple):
                tensors.append(_scalar(p[2]))
            else:
                tensors.extend(_tensors(p))
        floats = iter(torch.stack(tensors).float().tolist()) if tensors else iter(())
        out = [{"kind": "step", "epoch": p[0], "step": p[1], "train_loss": next(floats), "lr": p[3]}
               if isinstance(p, tuple) else _fill(p, floats) for p in self.points]
        self.points = []
        return out


def _scalar(v: torch.Tensor) -> torch.Tensor:
    # Losses and norms arrive 0-dim and detached: leaving them as they are saves two tensor
    # ops a point, most of a flush's time when every step logs a point.
    return v if v.ndim == 0 and not v.requires_grad else v.detach().reshape(())


def _tensors(point: dict) -> list[torch.Tensor]:
    out = []
    for v in point.values():
        if isinstance(v, torch.Tensor):
            out.append(_scalar(v))
        elif isinstance(v, dict):
            out.extend(_tensors(v))
    return out


def _fill(point: dict, floats) -> dict:
    """The point with each tensor replaced, in _tensors order, by its value."""
    return {k: next(floats) if isinstance(v, torch.Tensor) else _fill(v, floats) if isinstance(v, dict)
            else v for k, v in point.items()}
