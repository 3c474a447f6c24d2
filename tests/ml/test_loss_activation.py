"""The softmax trap (app/ml/loss_activation.py): an activation the loss applies again is refused or warned."""
import numpy as np
import pytest

from app.ml.check import DatasetInfo, Limits, plan_job
from app.ml.errors import SpecError
from app.ml.spec import JobSpec

LIMITS = Limits(max_parameters=10**7, max_epochs=1000, max_steps=10**7, max_layers=100)
CLASSES = DatasetInfo(rows=100, feature_shape=(4,), target_shape=(), target_kind="integer",
                      target_min=0, target_max=2)
# Three 0/1 columns, as bce_with_logits takes them (multi-label, or one-hot classes).
LABELS = DatasetInfo(rows=100, feature_shape=(4,), target_shape=(3,), target_kind="float",
                     target_min=0, target_max=1)
BODY = [{"type": "linear", "out_features": 8}, {"type": "relu"}, {"type": "linear", "out_features": 3}]


def job(loss: str, tail: list[dict]) -> JobSpec:
    return JobSpec.model_validate({"dataset": "ds_test", "loss": {"type": loss},
                                   "model": {"layers": BODY + tail}, "optimizer": {"type": "adam"},
                                   "training": {"epochs": 10, "batch_size": 16}})


def data_for(loss: str) -> DatasetInfo:
    return LABELS if loss == "bce_with_logits" else CLASSES


REFUSED = [  # (loss, layers after the logits, the layer named, the fix)
    ("nll", [{"type": "softmax"}], 3, "use log_softmax with nll"),
    ("nll", [{"type": "softmax"}, {"type": "dropout"}], 3, "use log_softmax with nll"),
    ("nll", [{"type": "sigmoid"}, {"type": "identity"}], 3, "use log_softmax with nll"),
    ("bce_with_logits", [{"type": "softmax"}], 3, "drop the softmax: bce_with_logits takes logits"),
    ("bce_with_logits", [{"type": "sigmoid"}], 3, "drop the sigmoid: bce_with_logits takes logits"),
    ("bce_with_logits", [{"type": "sigmoid"}, {"type": "dropout", "p": 0.1}, {"type": "flatten"}], 3,
     "drop the sigmoid"),
    ("bce_with_logits", [{"type": "log_softmax"}, {"type": "reshape", "shape": [3]}], 3,
     "drop the log_softmax"),
]


@pytest.mark.parametrize("loss, tail, index, fix", REFUSED, ids=[f"{r[0]}-{len(r[1])}-{r[3][:12]}" for r in REFUSED])
def test_an_activation_that_stops_the_loss_training_is_refused_naming_the_layer(loss, tail, index, fix):
    with pytest.raises(SpecError) as info:
        plan_job(job(loss, tail), data_for(loss), LIMITS)
    assert info.value.field == f"model.layers[{index}]"
    assert fix in info.value.message and tail[0]["type"] in info.value.message


WARNED = [
    ("cross_entropy", [{"type": "softmax"}], "model.layers[3] is softmax", "drop the softmax: cross_entropy takes logits"),
    ("cross_entropy", [{"type": "softmax"}, {"type": "dropout"}], "model.layers[3] is softmax", "drop the softmax"),
    ("cross_entropy", [{"type": "sigmoid"}, {"type": "identity"}], "model.layers[3] is sigmoid", "drop the sigmoid"),
]


@pytest.mark.parametrize("loss, tail, where, fix", WARNED, ids=[f"{w[2]}-{len(w[1])}" for w in WARNED])
def test_a_doubled_activation_that_still_trains_is_a_warning(loss, tail, where, fix):
    warnings = plan_job(job(loss, tail), data_for(loss), LIMITS).warnings
    assert len(warnings) == 1 and warnings[0].startswith(where) and fix in warnings[0], warnings


ACCEPTED = [
    ("cross_entropy", []),
    ("cross_entropy", [{"type": "log_softmax"}]),  # exact: see the test below
    ("nll", [{"type": "log_softmax"}]),
    ("nll", [{"type": "log_softmax"}, {"type": "dropout"}]),
    ("bce_with_logits", []),
    ("bce_with_logits", [{"type": "dropout"}]),
]


@pytest.mark.parametrize("loss, tail", ACCEPTED, ids=[f"{a[0]}-{len(a[1])}" for a in ACCEPTED])
def test_logits_or_the_right_log_probabilities_train_without_a_warning(loss, tail):
    assert plan_job(job(loss, tail), data_for(loss), LIMITS).warnings == []


def test_the_walk_stops_at_a_layer_with_weights():
    # softmax, then a linear layer: the linear layer's outputs are logits again.
    tail = [{"type": "softmax"}, {"type": "linear", "out_features": 3}]
    assert plan_job(job("bce_with_logits", tail), LABELS, LIMITS).warnings == []
    assert plan_job(job("cross_entropy", tail), CLASSES, LIMITS).warnings == []


def test_nll_on_logits_keeps_its_warning():
    warnings = plan_job(job("nll", []), CLASSES, LIMITS).warnings
    assert len(warnings) == 1 and "log_softmax" in warnings[0]


# ---- why each case is where it is: the losses by hand in numpy --------------------------

def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


LOGITS = np.random.default_rng(0).normal(scale=4.0, size=(64, 10))
TARGETS = np.random.default_rng(1).integers(0, 10, size=64)


def test_log_softmax_before_cross_entropy_is_exact_so_it_is_not_warned():
    rows = np.arange(len(TARGETS))
    on_logits = -_log_softmax(LOGITS)[rows, TARGETS].mean()
    on_log_probabilities = -_log_softmax(_log_softmax(LOGITS))[rows, TARGETS].mean()
    assert on_log_probabilities == pytest.approx(on_logits, rel=1e-12)


def test_softmax_before_nll_goes_negative_so_it_is_refused():
    p = np.exp(_log_softmax(LOGITS))
    assert -p[np.arange(len(TARGETS)), TARGETS].mean() < 0  # nll is -input[target]


def test_probabilities_before_bce_with_logits_predict_every_label_1_so_they_are_refused():
    # Accuracy counts sigmoid(output) > 0.5 as label 1: after a softmax or a sigmoid it always is.
    assert (_sigmoid(np.exp(_log_softmax(LOGITS))) > 0.5).all()
    assert (_sigmoid(_sigmoid(LOGITS)) > 0.5).all()
    assert (_sigmoid(_log_softmax(LOGITS)) <= 0.5).all()  # and after log_softmax never is
