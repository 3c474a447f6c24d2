"""Bad job specs get a 422 naming the field, and create nothing (nor does a dry run)."""
import copy

import numpy as np
import pytest

from tests.e2e.helpers import blobs, errors_for, mlp_spec, upload_npz


@pytest.fixture
def dataset(api):
    x, y = blobs(60)
    return upload_npz(api, x, y)


def _set(spec: dict, path: str, value) -> dict:
    spec = copy.deepcopy(spec)
    node = spec
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return spec


CASES = [
    # (change to the spec, field named, words in the message)
    ("model.layers.1.type", "conv9", "model.layers[1].type", "conv9"),
    ("model.layers.0.out_features", -4, "model.layers[0].out_features", "greater than 0"),
    ("model.layers.0.units", 4, "model.layers[0].units", "not permitted"),
    ("optimizer.lr", 0, "optimizer.lr", "greater than 0"),
    ("optimizer.nesterov", True, "optimizer.nesterov", "momentum"),
    ("optimizer.type", "sgdd", "optimizer.type", "sgdd"),
    ("loss.type", "hinge", "loss.type", "hinge"),
    ("training.batch_size", 0, "training.batch_size", "positive integer, or 'full'"),
    ("training.validation_split", 1.5, "training.validation_split", "less than 1"),
    ("training.epochs", 100000, "training.epochs", "limit of 500"),
    ("model.layers.2.out_features", 2, "model.layers", "at least 3 outputs"),
    ("dataset", "ds_missing", "dataset", "no dataset"),
    ("model.layers.0.kernel", 3, "model.layers[0].kernel", "Extra inputs"),
    ("training.epoch", 3, "training.epoch", "Extra inputs"),
    ("colour", "red", "colour", "Extra inputs"),
    ("training.device", "tpu", "training.device", "tpu"),
]


@pytest.mark.services
@pytest.mark.parametrize("path,value,field,words", CASES, ids=[c[0] + "=" + str(c[1]) for c in CASES])
def test_bad_spec_names_the_field(api, dataset, path, value, field, words):
    before = api.get("/v1/jobs").json()["total"]
    spec = _set(mlp_spec(dataset["id"]), path, value)
    if path == "optimizer.nesterov":
        spec["optimizer"]["momentum"] = 0
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 422, r.text
    errors = errors_for(r)
    assert field in errors, r.json()
    assert words in errors[field] or words in r.json()["detail"]
    assert api.get("/v1/jobs").json()["total"] == before
    dry = api.post("/v1/jobs", json=spec, params={"dry_run": "true"})
    assert dry.status_code == 422 and errors_for(dry) == errors
    assert api.get("/v1/jobs").json()["total"] == before


def test_loss_that_does_not_fit_the_targets(api):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2)).astype(np.float32)
    floats = upload_npz(api, x, rng.normal(size=30).astype(np.float32))
    spec = mlp_spec(floats["id"])
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 422
    assert "integer class label" in errors_for(r)["loss.type"]

    spec["loss"] = {"type": "mse"}  # 3 outputs against one target column
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 422
    assert "(batch, 3)" in errors_for(r)["model.layers"] and "(batch, 1)" in errors_for(r)["model.layers"]


def test_shape_error_names_the_layer(api, dataset):
    spec = mlp_spec(dataset["id"])
    spec["model"]["layers"].insert(0, {"type": "flatten", "start_dim": 3})
    r = api.post("/v1/jobs", json=spec, params={"dry_run": "true"})
    assert r.status_code == 422
    assert "out of range" in errors_for(r)["model.layers[0]"]


def test_a_recurrent_stack_counts_toward_the_layer_limit_before_anything_is_built(api):
    # Found by the contract test: a GRU of 10^6 stacked layers held the pre-flight check for minutes.
    spec = {"dataset": {"name": "sine_sequence"}, "loss": {"type": "mse"}, "optimizer": {"type": "adam"},
            "model": {"layers": [{"type": "gru", "hidden_size": 4, "num_layers": 1_000_000}, {"type": "linear",
                                                                                        "out_features": 1}]}}
    r = api.post("/v1/jobs", json=spec, params={"dry_run": "true"})
    assert r.status_code == 422, r.text
    assert errors_for(r)["model.layers"] == ("1,000,001 layers (a recurrent layer's num_layers counted each) is "
                                             "over the limit of 200")


def test_malformed_json_is_a_clear_422(api):
    r = api.post("/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"].startswith("body")


def test_training_conflicts_are_422_naming_the_field(api):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    ds = upload_npz(api, x, (x[:, 0] > 0).astype(np.int64))
    base = {"dataset": ds["id"], "model": {"layers": [{"type": "linear", "out_features": 2}]},
            "loss": {"type": "cross_entropy"}, "optimizer": {"type": "lbfgs"},
            "training": {"batch_size": 1}}
    r = api.post("/v1/jobs", json=base)
    assert r.status_code == 422 and "lbfgs" in errors_for(r)["training.batch_size"]
    r = api.post("/v1/jobs", json={**base, "optimizer": {"type": "adam"},
                                   "regularization": {"l1": -1}})
    assert r.status_code == 422 and "regularization.l1" in errors_for(r)
    r = api.post("/v1/jobs", json={**base, "optimizer": {"type": "adam"},
                                   "schedule": {"type": "reduce_on_plateau", "monitor": "val_loss"}})
    assert r.status_code == 422 and "schedule.monitor" in errors_for(r)
    assert api.get("/v1/jobs").json()["total"] == 0


def test_shape_errors_name_the_nested_layer(api, dataset):
    spec = mlp_spec(dataset["id"], epochs=1)
    spec["model"]["layers"] = [
        {"type": "linear", "out_features": 8},
        {"type": "residual", "layers": [{"type": "relu"}, {"type": "conv2d", "out_channels": 2,
                                                           "kernel_size": 3}]}]
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 422, r.text
    assert "conv2d expects 4-D input (batch, channels, h, w), got (batch, 8)" in \
        errors_for(r)["model.layers[1].layers[1]"]
    spec["model"]["layers"] = [{"type": "residual", "layers": [{"type": "linear", "out_features": 0}]}]
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 422 and "model.layers[0].layers[0].out_features" in errors_for(r)
    assert api.get("/v1/jobs").json()["total"] == 0


def test_spec_schema_is_served_to_key_holders_only(api, anon):
    schema = api.get("/v1/schema/spec").json()
    assert schema["title"] == "JobSpec"
    assert {"model", "loss", "optimizer", "schedule", "regularization", "training"} <= set(schema["properties"])
    text = str(schema)
    for word in ("lbfgs", "one_cycle", "early_stopping", "huber", "warmup"):
        assert word in text
    assert anon.get("/v1/schema/spec").status_code == 401


def test_the_softmax_trap_is_a_422_naming_the_layer_or_a_warning(api, dataset):
    spec = mlp_spec(dataset["id"])
    spec["model"]["layers"] += [{"type": "softmax"}, {"type": "dropout", "p": 0.1}]
    spec["loss"] = {"type": "nll"}  # trains on -p: refused, with the fix
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 422, r.text
    assert "use log_softmax with nll" in errors_for(r)["model.layers[3]"]
    spec["loss"] = {"type": "cross_entropy"}  # trains, slowly: a warning in the plan, and on the created job
    dry = api.post("/v1/jobs", json=spec, params={"dry_run": "true"})
    assert dry.status_code == 200, dry.text
    assert [w for w in dry.json()["warnings"] if w.startswith("model.layers[3] is softmax")]
    assert api.get("/v1/jobs").json()["total"] == 0


TYPOS = [  # (change to the spec, field named, the suggestion)
    ("optimizer.learning_rate", 0.1, "optimizer.learning_rate", "did you mean 'lr'?"),  # Keras's name
    ("model.layers.1.type", "lineer", "model.layers[1].type", "did you mean 'linear'?"),
    ("model.layers.0.type", "dense", "model.layers[0].type", "did you mean 'linear'?"),
    ("model.layers.0.out_feature", 3, "model.layers[0].out_feature", "did you mean 'out_features'?"),
    ("training.epoch", 3, "training.epoch", "did you mean 'epochs'?"),
    ("trainig", {}, "trainig", "did you mean 'training'?"),
    ("loss.type", "categorical_crossentropy", "loss.type", "did you mean 'cross_entropy'?"),
    ("optimizer.type", "adamw_", "optimizer.type", "did you mean 'adamw'?"),
]


@pytest.mark.parametrize("path,value,field,hint", TYPOS, ids=[t[0] + "=" + str(t[1]) for t in TYPOS])
def test_a_typo_gets_the_closest_allowed_name(api, dataset, path, value, field, hint):
    r = api.post("/v1/jobs", json=_set(mlp_spec(dataset["id"]), path, value), params={"dry_run": "true"})
    assert r.status_code == 422, r.text
    assert errors_for(r)[field].endswith(hint), r.json()


def test_no_suggestion_when_nothing_is_close(api, dataset):
    r = api.post("/v1/jobs", json=_set(mlp_spec(dataset["id"]), "colour", "red"), params={"dry_run": "true"})
    assert errors_for(r)["colour"] == "Extra inputs are not permitted, got 'red'"
    # the suggestion is one of the names allowed at that place: sgd has momentum, adam has not
    spec = mlp_spec(dataset["id"])
    spec["optimizer"] = {"type": "adam", "momentun": 0.9}
    r = api.post("/v1/jobs", json=spec, params={"dry_run": "true"})
    assert "did you mean" not in errors_for(r)["optimizer.momentun"]
    spec["optimizer"]["type"] = "sgd"
    r = api.post("/v1/jobs", json=spec, params={"dry_run": "true"})
    assert errors_for(r)["optimizer.momentun"].endswith("did you mean 'momentum'?")
