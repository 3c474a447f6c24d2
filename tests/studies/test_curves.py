"""The study curves against per-epoch figures computed here with numpy from the hand-built histories."""
import json

import numpy as np
import pytest

from app.studies.curves import curves
from tests.studies.histories import TABLE, member, study

# val_loss at each epoch over every member that has one there (any status), written out from TABLE.
VAL_LOSS_AT = {
    "adam": [[0.9, 1.0, 0.95], [0.5, 0.55], [0.3, 0.45, 0.21], [0.2, 0.22, 0.25]],  # seed 2 has none at epoch 2
    "nesterov": [[1.0, 1.1, 1.2], [0.7, 0.8, 0.9], [0.5, 0.6], [0.4, 0.45]],  # seed 3 pruned after epoch 2
    "sgd": [[1.2, 1.3, 1.25], [1.0, 1.1], [0.8], [0.7]],
    "rmsprop": [[0.8], [0.1]],  # still running
}


def by_label(result):
    return {variant.variant: variant for variant in result.variants}


def assert_columns(curve, values_at):
    """Each entry's mean, sample std, min, max and n are numpy's over that epoch's values."""
    assert curve.n == [len(v) for v in values_at]
    assert curve.mean == pytest.approx([np.mean(v) for v in values_at])
    assert curve.std == [pytest.approx(np.std(v, ddof=1)) if len(v) >= 2 else None for v in values_at]
    assert curve.min == pytest.approx([np.min(v) for v in values_at])
    assert curve.max == pytest.approx([np.max(v) for v in values_at])


def test_every_member_of_any_status_enters_by_epoch():
    result = curves(study(), metric="val_loss", x="epoch", per_member=False)
    assert (result.metric, result.x) == ("val_loss", "epoch")
    assert [v.variant for v in result.variants] == ["adam", "nesterov", "sgd", "rmsprop"]  # first appearance
    for label, values_at in VAL_LOSS_AT.items():
        curve = by_label(result)[label]
        assert curve.epoch == list(range(1, len(values_at) + 1))
        assert curve.x == pytest.approx(curve.epoch)
        assert_columns(curve, values_at)
        assert curve.members is None


def test_step_is_the_members_mean_step_at_each_epoch():
    adam = by_label(curves(study(), metric="val_loss", x="step", per_member=False))["adam"]
    # seeds 1 and 2 take 4 steps an epoch, seed 3 five; seed 2 has no value at epoch 2
    steps = [[4, 4, 5], [8, 10], [12, 12, 15], [16, 16, 20]]
    assert adam.x == pytest.approx([np.mean(s) for s in steps])
    assert_columns(adam, VAL_LOSS_AT["adam"])


def test_seconds_is_the_members_mean_cumulative_training_seconds_at_each_epoch():
    adam = by_label(curves(study(), metric="val_loss", x="seconds", per_member=False))["adam"]
    s1, s2, s3 = (np.cumsum(row[5]) for row in TABLE if row[0] == "adam")
    expected = [np.mean([s1[0], s2[0], s3[0]]), np.mean([s1[1], s3[1]]),
                np.mean([s1[2], s2[2], s3[2]]), np.mean([s1[3], s2[3], s3[3]])]
    assert adam.x == pytest.approx(expected)
    assert_columns(adam, VAL_LOSS_AT["adam"])


def test_per_member_curves_keep_each_members_own_points():
    result = curves(study(), metric="val_loss", x="seconds", per_member=True)
    adam, nesterov = by_label(result)["adam"], by_label(result)["nesterov"]
    assert [(m.job_id, m.seed, m.status) for m in adam.members] == \
        [("job_adam_1", 1, "succeeded"), ("job_adam_2", 2, "succeeded"), ("job_adam_3", 3, "succeeded")]
    seed2 = adam.members[1]
    assert seed2.x == pytest.approx(np.cumsum([0.2, 0.2, 0.2, 0.2])[[0, 2, 3]])
    assert seed2.y == [1.0, 0.45, 0.22]
    pruned = nesterov.members[2]
    assert pruned.status == "pruned" and pruned.y == [1.2, 0.9]
    by_epoch = by_label(curves(study(), metric="val_loss", x="epoch", per_member=True))["adam"].members[1]
    assert by_epoch.x == [1, 3, 4]


def test_another_metric_has_its_own_gaps():
    adam = by_label(curves(study(), metric="val_accuracy", x="epoch", per_member=False))["adam"]
    assert_columns(adam, [[0.6, 0.55, 0.58], [0.8, 0.78, 0.79], [0.9, 0.88, 0.9], [0.95, 0.93, 0.94]])


def test_unknown_seconds_and_non_finite_values_are_left_out():
    members = [member("a", 1, "running", [0.9, 0.5, 0.4], seconds=[0.1, None, 0.1]),
               member("a", 2, "running", [0.8, float("nan"), 0.3], seconds=[0.2, 0.2, 0.2])]
    curve = curves(members, metric="val_loss", x="seconds", per_member=True).variants[0]
    assert_columns(curve, [[0.9, 0.8], [0.5], [0.4, 0.3]])  # NaN (stored as None) is no value
    assert curve.x == pytest.approx([np.mean([0.1, 0.2]), None, 0.6])  # epoch 2: only seed 1, seconds unknown
    assert curve.members[0].x == pytest.approx([0.1]) and curve.members[0].y == [0.9]
    assert curve.members[1].x == pytest.approx([0.2, 0.6]) and curve.members[1].y == [0.8, 0.3]


def test_a_variant_without_values_has_empty_columns_and_it_is_json():
    members = [member("fresh", 1, "queued", []), member("no_val", 1, "running", [None, None])]
    result = curves(members, metric="val_loss", x="epoch", per_member=True)
    for curve in result.variants:
        assert (curve.epoch, curve.x, curve.mean, curve.n) == ([], [], [], [])
    data = json.loads(curves(study(), metric="val_loss", x="step", per_member=True).model_dump_json())
    assert data["variants"][0]["n"] == [3, 2, 3, 3]
