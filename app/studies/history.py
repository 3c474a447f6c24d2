"""The inputs of a study's figures: its objective and each member job's epoch history (plain data, no database)."""
import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Objective:
    """What a study optimizes: one epoch metric, its direction, and what "converged" means."""

    metric: str  # any epoch metric name: "val_loss", "train_loss", "val_accuracy", ...
    mode: Literal["min", "max"]
    target: float | None  # the value that counts as reached, for the time-to-target figures


@dataclass(frozen=True)
class MemberHistory:
    """One member job as the figures see it; members of one variant differ only by seed."""

    job_id: str
    variant: str
    seed: int
    status: str  # a job status: held queued retrying running succeeded failed cancelled pruned
    epochs: list[dict]  # epoch points in epoch order: {"epoch", "step", <metrics>, "epoch_seconds", ...}
    wall_seconds: float | None  # finished_at - started_at; None while unfinished


def finite(value) -> float | None:
    """The value as a float, or None when it is missing, NaN or Inf (stored NaN/Inf already read None)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def metric_points(member: MemberHistory, metric: str) -> list[tuple[dict, float]]:
    """(point, value) for each epoch point with a finite ``metric``, in epoch order; the others are skipped."""
    pairs = ((point, finite(point.get(metric))) for point in member.epochs)
    return [(point, value) for point, value in pairs if value is not None]


def cumulative_seconds(member: MemberHistory) -> dict[int, float | None]:
    """Epoch number -> training seconds through that epoch (the sum of ``epoch_seconds``).

    Once one epoch's seconds are missing the sum is unknown from there on (None), rather than
    silently short: a time-to-target that left out an epoch would flatter its variant.
    """
    through: dict[int, float | None] = {}
    total: float | None = 0.0
    for point in member.epochs:
        seconds = finite(point.get("epoch_seconds"))
        total = None if total is None or seconds is None else total + seconds
        through[int(point["epoch"])] = total
    return through


def by_variant(members: list[MemberHistory]) -> dict[str, list[MemberHistory]]:
    """The members grouped by variant label, variants in the order they first appear."""
    groups: dict[str, list[MemberHistory]] = {}
    for member in members:
        groups.setdefault(member.variant, []).append(member)
    return groups
