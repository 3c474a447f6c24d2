"""A study's learning curves: per variant, one epoch metric aggregated over its members by epoch, in columns.

Pure: numpy and pydantic over MemberHistory (app/studies/history.py); no database.
Every member enters, any status: the curves update live while members run, and a pruned or
failed member's epochs are real up to where it stopped. At each epoch a variant's figures are
over the members that have a value of the metric there, so ``n`` can fall along the curve.

Members are aggregated by epoch index even when x is "step" or "seconds". Their clocks differ
(another machine, a busier one, a retry's resumed time), so the same epoch lands at a different
second for each seed, and binning by seconds would average epoch 5 of one seed with epoch 7 of
another. Instead the values of one epoch are aggregated, and placed at the members' mean x there.
"""
from typing import Literal

import numpy as np
from pydantic import BaseModel

from app.studies.history import (
    MemberHistory,
    by_variant,
    cumulative_seconds,
    finite,
    metric_points,
)

XAxis = Literal["epoch", "step", "seconds"]


class MemberCurve(BaseModel):
    """One member's own curve: its points with a value of the metric and a known x."""

    job_id: str
    seed: int
    status: str
    x: list[float]
    y: list[float]


class VariantCurve(BaseModel):
    """Columns, one entry per epoch with at least one member's value (kept small for JSON)."""

    variant: str
    epoch: list[int]  # the epoch number of each entry
    x: list[float | None]  # epoch number, or the members' mean step / seconds (None: none known)
    mean: list[float]
    std: list[float | None]  # the sample std (ddof=1); None where n < 2
    min: list[float]
    max: list[float]
    n: list[int]
    members: list[MemberCurve] | None = None  # with per_member=True


class Curves(BaseModel):
    metric: str
    x: XAxis  # what each variant's x column measures
    variants: list[VariantCurve]  # in the order the variants first appear among the members


def curves(members: list[MemberHistory], *, metric: str, x: XAxis, per_member: bool) -> Curves:
    """Each variant's curve of ``metric`` against ``x``, over its members of any status."""
    variants = [_variant_curve(label, group, metric=metric, x=x, per_member=per_member)
                for label, group in by_variant(members).items()]
    return Curves(metric=metric, x=x, variants=variants)


def _member_x(member: MemberHistory, x: XAxis) -> dict[int, float | None]:
    """Epoch number -> this member's x there (None when unknown)."""
    if x == "seconds":
        return cumulative_seconds(member)
    if x == "step":
        return {int(p["epoch"]): finite(p.get("step")) for p in member.epochs}
    return {int(p["epoch"]): float(p["epoch"]) for p in member.epochs}


def _variant_curve(label: str, group: list[MemberHistory], *, metric: str, x: XAxis,
                   per_member: bool) -> VariantCurve:
    """One variant's columns: at each epoch, the members' values and their mean x."""
    at: dict[int, list[tuple[float, float | None]]] = {}  # epoch -> [(value, member's x)]
    own: list[MemberCurve] = []
    for member in group:
        xs = _member_x(member, x)
        values = {int(point["epoch"]): value for point, value in metric_points(member, metric)}
        for epoch, value in values.items():
            at.setdefault(epoch, []).append((value, xs[epoch]))
        known = [(xs[e], v) for e, v in values.items() if xs[e] is not None]
        own.append(MemberCurve(job_id=member.job_id, seed=member.seed, status=member.status,
                               x=[p for p, _ in known], y=[v for _, v in known]))
    epochs = sorted(at)
    columns = [_column(at[epoch]) for epoch in epochs]
    return VariantCurve(variant=label, epoch=epochs, x=[c[0] for c in columns], mean=[c[1] for c in columns],
                        std=[c[2] for c in columns], min=[c[3] for c in columns], max=[c[4] for c in columns],
                        n=[c[5] for c in columns], members=own if per_member else None)


def _column(entries: list[tuple[float, float | None]]) -> tuple:
    """(mean x, mean, std, min, max, n) of one epoch's (value, x) entries."""
    values = np.asarray([value for value, _ in entries], dtype=float)
    xs = [p for _, p in entries if p is not None]
    std = float(values.std(ddof=1)) if values.size >= 2 else None
    return (float(np.mean(xs)) if xs else None, float(values.mean()), std,
            float(values.min()), float(values.max()), int(values.size))
