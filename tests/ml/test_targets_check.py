"""Pre-flight of the targets against the loss and the output (app/ml/check.py check_targets, through
plan_job): class labels, probability rows, elementwise and bce targets."""
import pytest

from app.ml import spec as S
from app.ml.check import DatasetInfo, check_targets, plan_job
from app.ml.errors import SpecError
from tests.ml.test_shapes_check import BIG, MLP, classes, regression, spec, spec_error


def test_cross_entropy_with_float_targets_is_a_loss_error():
    err = spec_error(plan_job, spec(), regression(), BIG)
    assert err.field == "loss.type"
    assert "float" in err.message and "mse" in err.message


# cross_entropy takes (batch, k) class-probability rows as PyTorch does: one-hot or soft labels.

def probs(k=3, lo=0.0, hi=1.0, kind="float") -> DatasetInfo:
    return DatasetInfo(rows=100, feature_shape=(4,), target_shape=(k,), target_kind=kind,
                       target_min=lo, target_max=hi)


def with_loss(loss: dict, layers=None) -> S.JobSpec:
    return S.JobSpec.model_validate({"dataset": "ds", "model": {"layers": layers or MLP}, "loss": loss,
                                     "optimizer": {"type": "sgd"}})


@pytest.mark.parametrize("kind", ["float", "integer"])  # one-hot rows sent as whole numbers are integer
def test_cross_entropy_takes_probability_rows_of_the_output_width(kind):
    plan = plan_job(spec(), probs(kind=kind), BIG)
    assert plan.output_shape == (3,) and plan.warnings == []
    plan_job(with_loss({"type": "cross_entropy", "label_smoothing": 0.1, "weight": [1, 2, 3]}), probs(), BIG)


def test_probability_rows_of_another_width_name_the_layers_with_both_widths():
    err = spec_error(plan_job, spec(), DatasetInfo(100, (4,), (2,), "integer", 0, 1), BIG)
    assert err.field == "model.layers"
    assert "the targets have 2 columns" in err.message and "needs 2 outputs" in err.message
    assert "gives 3" in err.message


def test_probability_rows_need_a_1d_output():
    err = spec_error(plan_job, spec([{"type": "linear", "out_features": 3}]),
                     DatasetInfo(100, (2, 4), (3,), "float", 0.0, 1.0), BIG)
    assert err.field == "model.layers" and "(batch, 2, 3)" in err.message


def test_a_negative_probability_is_a_data_error():
    err = spec_error(plan_job, spec(), probs(lo=-0.5), BIG)
    assert err.field == "dataset" and "negative" in err.message and "-0.5" in err.message


def test_class_weights_count_the_probability_columns():
    err = spec_error(plan_job, with_loss({"type": "cross_entropy", "weight": [1.0, 2.0]}), probs(), BIG)
    assert err.field == "loss.weight" and "2 class weights for 3 classes" in err.message


@pytest.mark.parametrize("kind", ["float", "integer"])
def test_nll_refuses_probability_rows_pointing_to_cross_entropy(kind):
    err = spec_error(plan_job, spec(loss="nll"), probs(kind=kind), BIG)
    assert err.field == "loss.type"
    assert "rows of 3 values" in err.message and "use cross_entropy for probability rows" in err.message
    assert "mse or l1" not in err.message  # what it used to say: regression, for a classification user


@pytest.mark.parametrize("hi, words", [
    (2.0, "a target is 2, so its row sums to more than 1"),
    (0.25, "the largest target is 0.25 over 3 columns, so every row sums to less than 1"),
])
def test_probability_rows_that_cannot_sum_to_1_are_a_warning(hi, words):
    [warning] = plan_job(spec(), probs(hi=hi), BIG).warnings
    assert warning.startswith("target rows should sum to 1") and words in warning


def test_one_hot_labels_with_cross_entropy_have_no_sum_warning():
    data = DatasetInfo(100, (4,), (), "integer", 0, 2, targets="one_hot")
    assert plan_job(spec(), data, BIG).warnings == []


def test_cross_entropy_labels_beyond_the_output_size():
    err = spec_error(plan_job, spec(), classes(k=5), BIG)  # labels 0..4, 3 outputs
    assert err.field == "model.layers"
    assert "at least 5 outputs" in err.message and "gives 3" in err.message


def test_cross_entropy_label_boundary():
    plan_job(spec(), classes(k=3), BIG)  # labels 0..2 with 3 outputs is fine
    spec_error(plan_job, spec(), classes(k=4), BIG)
    negative = DatasetInfo(100, (4,), (), "integer", -1, 2)
    assert spec_error(plan_job, spec(), negative, BIG).field == "model.layers"


def test_cross_entropy_needs_a_1d_output():
    layers = [{"type": "linear", "out_features": 3}]
    err = spec_error(plan_job, spec(layers), classes(features=(2, 4)), BIG)
    assert err.field == "model.layers" and "(batch, 2, 3)" in err.message


@pytest.mark.parametrize("loss", ["mse", "l1"])
def test_elementwise_loss_output_target_mismatch(loss):
    err = spec_error(plan_job, spec(MLP, loss=loss), regression(), BIG)  # (3,) vs one value
    assert err.field == "model.layers"
    assert "(batch, 3)" in err.message and "(batch, 1)" in err.message
    err = spec_error(plan_job, spec(MLP, loss=loss), regression(target_shape=(2,)), BIG)
    assert err.field == "model.layers" and "(batch, 2)" in err.message


@pytest.mark.parametrize("loss", ["mse", "l1"])
def test_elementwise_loss_shapes_that_match(loss):
    one = [{"type": "linear", "out_features": 1}]
    assert plan_job(spec(one, loss=loss), regression(), BIG).output_shape == (1,)
    assert plan_job(spec(MLP, loss=loss), regression(target_shape=(3,)), BIG).output_shape == (3,)
    # integer-valued regression targets are fine for mse too
    assert plan_job(spec(one, loss=loss), classes(k=7), BIG).output_shape == (1,)


@pytest.mark.parametrize("lo, hi", [(-0.5, 1.0), (0.0, 2.0), (-1, 1)])
def test_bce_with_logits_targets_outside_0_1(lo, hi):
    one = [{"type": "linear", "out_features": 1}]
    err = spec_error(plan_job, spec(one, loss="bce_with_logits"), regression(lo=lo, hi=hi), BIG)
    assert err.field == "loss.type" and "[0, 1]" in err.message


def test_bce_with_logits_targets_inside_0_1():
    one = [{"type": "linear", "out_features": 1}]
    plan_job(spec(one, loss="bce_with_logits"), regression(lo=0.0, hi=1.0), BIG)
    plan_job(spec(one, loss="bce_with_logits"), classes(k=2), BIG)
    multi = [{"type": "linear", "out_features": 4}]
    plan_job(spec(multi, loss="bce_with_logits"), regression(target_shape=(4,), lo=0, hi=1), BIG)


def test_check_targets_directly():
    check_targets(S.loss_spec("cross_entropy"), (3,), classes(k=3))
    with pytest.raises(SpecError) as e:
        check_targets(S.loss_spec("mse"), (2,), regression())
    assert e.value.field == "model.layers"
