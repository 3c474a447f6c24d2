"""The study leaderboard: per variant, the objective over its seeds, ranked, and whether the lead beats the seed spread.

Pure: numpy, scipy and pydantic over MemberHistory (app/studies/history.py); no database.
Only succeeded members enter the figures: a pruned, failed or cancelled member stopped early,
so its last value is not comparable with a finished one. ``members`` still counts every status.
"""
import math
import warnings
from typing import Literal

import numpy as np
from pydantic import BaseModel
from scipy import stats

from app.studies.history import (
    MemberHistory,
    Objective,
    by_variant,
    cumulative_seconds,
    finite,
    metric_points,
)

SIGNIFICANCE = 0.05  # Lead.significant: p below this


class Stat(BaseModel):
    """One figure over a variant's members: n values; all None when n == 0."""

    mean: float | None
    std: float | None  # the sample std (ddof=1); None when n < 2
    min: float | None
    max: float | None
    n: int


class TargetStat(BaseModel):
    """How many members reached the objective's target, and how soon (over those that did)."""

    reached: int
    n: int  # the members with an objective value; ``reached`` of them got there
    epochs: Stat  # the first epoch number at which each one reached it
    seconds: Stat  # training seconds (sum of epoch_seconds) through that epoch


class VariantRow(BaseModel):
    variant: str
    rank: int | None  # 1-based; None when no succeeded member has an objective value
    seeds: list[int]  # of every member, any status, ascending
    members: dict[str, int]  # status -> count, every member
    final: Stat  # the objective at each succeeded member's last point with a value
    best: Stat  # each succeeded member's best value over its points (min or max per mode)
    to_target: TargetStat | None  # None when the objective has no target
    auc: Stat  # area under each succeeded member's curve (trapezoid, x = epoch); see _area
    wall_seconds: Stat  # finished_at - started_at of the succeeded members


class Lead(BaseModel):
    """Is the winner's lead over the runner-up larger than the seed spread? Welch's t-test on the finals."""

    test: Literal["welch_t"] = "welch_t"
    against: str  # the runner-up's label
    p_value: float | None  # None when the test cannot be run; ``note`` says why
    n_winner: int
    n_runner_up: int
    significant: bool | None  # p_value < SIGNIFICANCE; None without a p_value
    note: str | None
    # The same finals paired by seed (scipy's ttest_rel), over the seeds both variants ran to the end:
    # a seed draws the initial weights and the validation split, so pairing takes the split's share
    # of the spread out. None with fewer than 2 pairs, or no spread in the differences.
    paired_p_value: float | None = None
    n_pairs: int = 0


class Leaderboard(BaseModel):
    objective: Objective
    rows: list[VariantRow]  # ranked rows by final mean, then the unranked ones in label order
    winner: str | None
    lead: Lead | None  # None when fewer than 2 variants are ranked
    summary: str  # one sentence for people


def summarize(values: list[float]) -> Stat:
    """The Stat of the values (sample std, ddof=1)."""
    if not values:
        return Stat(mean=None, std=None, min=None, max=None, n=0)
    a = np.asarray(values, dtype=float)
    std = float(a.std(ddof=1)) if a.size >= 2 else None
    return Stat(mean=float(a.mean()), std=std, min=float(a.min()), max=float(a.max()), n=int(a.size))


def leaderboard(members: list[MemberHistory], objective: Objective) -> Leaderboard:
    """Rank the variants by their members' final objective, and test the winner's lead."""
    groups = by_variant(members)
    finals = {label: [c[-1][1] for c in _succeeded_curves(group, objective)] for label, group in groups.items()}
    by_seed = {label: _finals_by_seed(group, objective) for label, group in groups.items()}
    rows = _ranked([_row(label, group, objective) for label, group in groups.items()], objective)
    ranked = [row for row in rows if row.rank is not None]
    lead = _lead(ranked[0], ranked[1], finals) if len(ranked) >= 2 else None
    if lead is not None:
        lead.paired_p_value, lead.n_pairs = _paired(by_seed[ranked[0].variant], by_seed[ranked[1].variant])
    return Leaderboard(objective=objective, rows=rows, winner=ranked[0].variant if ranked else None,
                       lead=lead, summary=_summary(objective, ranked, lead))


def _finals_by_seed(group: list[MemberHistory], objective: Objective) -> dict[int, float]:
    out = {}
    for m in group:
        curve = metric_points(m, objective.metric) if m.status == "succeeded" else []
        if curve:
            out[m.seed] = curve[-1][1]
    return out


def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[float | None, int]:
    """Paired t-test of two variants' finals over the seeds both have; (p, pairs)."""
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    if len(seeds) < 2 or np.ptp(diffs) == 0:
        return None, len(seeds)
    p = float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
    return (p if math.isfinite(p) else None), len(seeds)


def _succeeded_curves(group: list[MemberHistory], objective: Objective) -> list[list[tuple[dict, float]]]:
    """The objective's (point, value) curve of each succeeded member that has at least one value."""
    curves = (metric_points(m, objective.metric) for m in group if m.status == "succeeded")
    return [curve for curve in curves if curve]


def _row(label: str, group: list[MemberHistory], objective: Objective) -> VariantRow:
    """One variant's row, unranked (rank None) until _ranked."""
    done = [m for m in group if m.status == "succeeded"]
    curves = _succeeded_curves(group, objective)
    pick = min if objective.mode == "min" else max
    counts: dict[str, int] = {}
    for member in group:
        counts[member.status] = counts.get(member.status, 0) + 1
    areas = [a for a in (_area(curve) for curve in curves) if a is not None]
    return VariantRow(
        variant=label, rank=None, seeds=sorted(m.seed for m in group), members=counts,
        final=summarize([curve[-1][1] for curve in curves]), best=summarize([pick(v for _, v in c) for c in curves]),
        to_target=_to_target(done, objective), auc=summarize(areas),
        wall_seconds=summarize([s for s in (finite(m.wall_seconds) for m in done) if s is not None]))


def _area(curve: list[tuple[dict, float]]) -> float | None:
    """Trapezoid area under (epoch, value) over the points with a value (a gap is bridged by a line).

    A one-point curve has no area: None, left out of the Stat (its n shows that), because 0 would
    read as the best possible loss. Areas compare only between members run for the same epochs.
    """
    if len(curve) < 2:
        return None
    epochs = [float(point["epoch"]) for point, _ in curve]
    return float(np.trapezoid([value for _, value in curve], x=epochs))


def _to_target(done: list[MemberHistory], objective: Objective) -> TargetStat | None:
    """For each member that reached the target: the first such epoch and the seconds through it."""
    if objective.target is None:
        return None
    target = objective.target
    reached = (lambda v: v <= target) if objective.mode == "min" else (lambda v: v >= target)
    n, epochs, seconds = 0, [], []
    for member in done:
        curve = metric_points(member, objective.metric)
        n += bool(curve)
        first = next((point for point, value in curve if reached(value)), None)
        if first is None:
            continue
        epochs.append(float(first["epoch"]))
        through = cumulative_seconds(member)[int(first["epoch"])]
        if through is not None:  # unknown when an epoch's seconds are missing: left out, n shows it
            seconds.append(through)
    return TargetStat(reached=len(epochs), n=n, epochs=summarize(epochs), seconds=summarize(seconds))


def _ranked(rows: list[VariantRow], objective: Objective) -> list[VariantRow]:
    """Rows with a final mean first, best first (label breaks ties), then the others by label."""
    sign = 1.0 if objective.mode == "min" else -1.0
    ranked = sorted((r for r in rows if r.final.n), key=lambda r: (sign * r.final.mean, r.variant))
    others = sorted((r for r in rows if not r.final.n), key=lambda r: r.variant)
    ranked = [row.model_copy(update={"rank": i}) for i, row in enumerate(ranked, start=1)]
    return ranked + others


def _lead(winner: VariantRow, runner_up: VariantRow, finals: dict[str, list[float]]) -> Lead:
    """Welch's t-test (unequal variances) of the winner's finals against the runner-up's."""
    a, b = finals[winner.variant], finals[runner_up.variant]
    p_value, note = None, _untestable(winner.variant, a, runner_up.variant, b)
    if note is None:
        with warnings.catch_warnings():
            # One side's seeds may all end alike (zero spread): a valid case for Welch's test, on
            # which scipy still warns about precision; the other side's spread carries the test.
            warnings.simplefilter("ignore", RuntimeWarning)
            p_value = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        if not math.isfinite(p_value):
            p_value, note = None, "the t-test gave no p-value for these finals"
        elif p_value < SIGNIFICANCE:
            note = f"the gap is larger than the seed spread (p < {SIGNIFICANCE})"
        else:
            note = f"the gap is within the seed spread (p >= {SIGNIFICANCE}): more seeds may tell them apart"
    significant = None if p_value is None else p_value < SIGNIFICANCE
    return Lead(against=runner_up.variant, p_value=p_value, n_winner=len(a), n_runner_up=len(b),
                significant=significant, note=note)


def _untestable(winner: str, a: list[float], runner_up: str, b: list[float]) -> str | None:
    """Why the finals cannot be compared with their seed spread, or None when they can."""
    if len(a) < 2 or len(b) < 2:
        return (f"needs at least 2 succeeded seeds per variant to compare with the seed spread "
                f"({winner} has {len(a)}, {runner_up} has {len(b)})")
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return ("every seed of each variant ended at the same value, so there is no seed spread "
                "to compare the gap with")
    return None


def _summary(objective: Objective, ranked: list[VariantRow], lead: Lead | None) -> str:
    """One sentence: who leads, by how much, and whether that beats the seed spread."""
    metric = objective.metric
    if not ranked:
        return f"no variant has a succeeded member with a {metric} value yet"
    first = ranked[0]
    if lead is None:
        return f"{first.variant} is the only variant with a succeeded {metric} so far ({_figure(first.final)})"
    second = ranked[1]
    head = f"{first.variant} leads on {metric} ({_figure(first.final)}) over {second.variant} ({_figure(second.final)})"
    if lead.p_value is None:
        return f"{head}; {lead.note}"
    word = "larger than" if lead.significant else "within"
    paired = "" if lead.paired_p_value is None else \
        f" (paired by seed over {lead.n_pairs} seeds: {format_p(lead.paired_p_value)})"
    return f"{head}; Welch's t-test {format_p(lead.p_value)}: {word} the seed spread{paired}"


def _figure(stat: Stat) -> str:
    """'0.041 ± 0.003, n=3' (three significant digits), or '0.041, n=1'."""
    if stat.std is None:
        return f"{stat.mean:.3g}, n={stat.n}"
    return f"{stat.mean:.3g} ± {stat.std:.3g}, n={stat.n}"


def format_p(p_value: float) -> str:
    """'p=0.012' (two significant digits), or 'p<0.001' below that."""
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.2g}"
