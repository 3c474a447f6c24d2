"""Which members pack together: the packability check, the pack key, and the conductor's release rule."""
import pytest

from app.ml.spec import JobSpec
from app.studies.packing import key_of, pack_key, refusal, releasable, slots

BASE = {"dataset": "digits", "loss": {"type": "cross_entropy"},
        "model": {"layers": [{"type": "linear", "out_features": 128}, {"type": "relu"},
                             {"type": "linear", "out_features": 10}]},
        "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9},
        "training": {"epochs": 3, "batch_size": 32, "seed": 1}}


def spec(**changes) -> JobSpec:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for path, value in changes.items():
        head, _, tail = path.partition("__")
        if tail:
            data[head] = {**data.get(head, {}), tail: value}
        else:
            data[head] = value
    return JobSpec.model_validate(data)


def test_members_that_differ_in_seed_lr_momentum_and_weight_decay_share_a_key():
    a = spec()
    b = spec(training__seed=7, optimizer__lr=0.01, optimizer__momentum=0.5, optimizer__weight_decay=1e-4)
    assert refusal(a) is None and refusal(b) is None
    assert pack_key(a) == pack_key(b)


@pytest.mark.parametrize("change", [{"training__batch_size": 16}, {"training__epochs": 4},
                                    {"optimizer": {"type": "adam", "lr": 0.1}}, {"dataset": "iris"},
                                    {"training__validation_split": 0.2},
                                    {"schedule": {"type": "step", "step_size": 1, "gamma": 0.5}}])
def test_anything_else_that_differs_makes_another_pack(change):
    assert pack_key(spec(**change)) != pack_key(spec())


@pytest.mark.parametrize("change, field", [
    ({"model": {"layers": [{"type": "linear", "out_features": 8}, {"type": "dropout", "p": 0.5},
                           {"type": "linear", "out_features": 10}]}}, "model.layers: dropout"),
    ({"model": {"layers": [{"type": "linear", "out_features": 8}, {"type": "batchnorm1d"},
                           {"type": "linear", "out_features": 10}]}}, "model.layers: batchnorm1d"),
    ({"optimizer": {"type": "lbfgs", "lr": 1}, "training__batch_size": "full"}, "optimizer.type"),
    ({"training__on_divergence": "rollback"}, "training.on_divergence"),
    ({"training__devices": 2}, "training.devices"),
    ({"regularization": {"l2": 1e-3}}, "regularization"),
    ({"regularization": {"grad_clip": {"type": "norm", "max_norm": 1}}}, "regularization"),
])
def test_what_cannot_be_packed_says_why(change, field):
    assert refusal(spec(**change)).startswith(field)
    assert key_of(spec(**change).model_dump(mode="json")) is None


def test_release_takes_a_packs_members_into_one_slot():
    keys = {"a1": "A", "a2": "A", "b1": None, "a3": "A", "c1": "C"}
    key = keys.get
    assert releasable(list(keys), 1, key, 64) == ["a1", "a2", "a3"]
    assert releasable(list(keys), 2, key, 64) == ["a1", "a2", "a3", "b1"]
    assert releasable(list(keys), 3, key, 2) == ["a1", "a2", "b1", "a3"]
    assert releasable(list(keys), 0, key, 64) == []
    assert releasable(list(keys), 5, key, 1) == list(keys)  # PACK_MAX_MEMBERS=1: one member a slot


def test_slots_count_a_pack_once():
    rows = [("j1", "A", "p1"), ("j2", "A", "p1"), ("j3", None, None), ("j4", "A", None), ("j5", "A", None),
            ("j6", "B", None)]
    key = {r[0]: r[1] for r in rows}.get
    pack = {r[0]: r[2] for r in rows}.get
    assert slots([r[0] for r in rows], key, pack, 64) == 4  # p1, j3, the waiting A pair, B
    assert slots([r[0] for r in rows], key, pack, 1) == 5
