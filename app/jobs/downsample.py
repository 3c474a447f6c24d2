"""Long histories cut to a number of points a chart can draw, keeping the spikes.

The points are split into buckets of equal step ranges; from each bucket the first point and
the points with the lowest and the highest value of the deciding metric (train_loss) are kept,
in step order, so a divergence spike or a sudden drop survives where averaging or taking every
k-th point would hide it (the min/max scheme of time-series charts). The first and last
points are always kept.
"""
from collections.abc import Sequence

METRIC = "train_loss"


def downsample(points: Sequence, max_points: int, value=lambda p: p.values.get(METRIC)) -> list:
    """At most ``max_points`` of ``points`` (in step order), spikes kept; all of them when they fit."""
    if len(points) <= max_points:
        return list(points)
    buckets = max(1, (max_points - 1) // 3)  # three kept per bucket, and the very last point
    lo, hi = points[0].step, points[-1].step
    width = (hi - lo + 1) / buckets
    keep: set[int] = {0, len(points) - 1}
    current, first, low, high = None, None, None, None

    def close() -> None:
        keep.update(i for i in (first, low, high) if i is not None)

    for i, p in enumerate(points):
        bucket = min(int((p.step - lo) / width), buckets - 1)
        if bucket != current:
            close()
            current, first, low, high = bucket, i, None, None
        v = value(p)
        if v is None or v != v:  # None or NaN: a point the chart shows as a gap, kept as it is
            keep.add(i)
            continue
        if low is None or v < value(points[low]):
            low = i
        if high is None or v > value(points[high]):
            high = i
    close()
    return [points[i] for i in sorted(keep)]
