"""Divergence: a loss that became NaN or Inf, found once per flush with one device sync."""
import torch


class Diverged(Exception):
    """The loss became NaN or Inf."""

    def __init__(self, epoch: int, step: int, value: float, note: str = ""):
        word = "nan" if value != value else ("inf" if value > 0 else "-inf")
        super().__init__(f"diverged at epoch {epoch} step {step}: loss became {word}{note}")
        self.epoch, self.step, self.value = epoch, step, value


def check_finite(losses: list[tuple[int, int, torch.Tensor]]) -> None:
    """Raise Diverged at the first non-finite loss among (epoch, step, loss); one sync per call."""
    if not losses:
        return
    values = torch.stack([l for _, _, l in losses])
    finite = torch.isfinite(values)
    if bool(finite.all()):
        return
    i = int((~finite).nonzero()[0])
    epoch, step, _ = losses[i]
    raise Diverged(epoch, step, float(values[i]))
