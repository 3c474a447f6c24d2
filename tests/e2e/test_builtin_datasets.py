"""Builtin datasets and data options through the HTTP API, on both deployments."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load

from app.ml import builtin_datasets as builtin
from app.ml.build import build_model
from app.ml.preprocessing import apply_preprocessing
from app.ml.data_spec import BUILTIN_SPECS
from app.ml.spec import JobSpec
from tests.e2e.helpers import blobs, errors_for, upload_npz, wait_for
from worker.training import Hooks, train


def spec_for(dataset, outputs=3, loss="cross_entropy", data=None, flatten=False, **training) -> dict:
    layers = [{"type": "flatten"}] if flatten else []
    layers += [{"type": "linear", "out_features": 16}, {"type": "relu"},
               {"type": "linear", "out_features": outputs}]
    return {"dataset": dataset, "model": {"layers": layers}, "loss": {"type": loss},
            "optimizer": {"type": "adam", "lr": 0.01}, "data": data or {},
            "training": {"epochs": 5, "batch_size": 16, "seed": 1, **training}}


def preprocessing_of(stack, job_id: str) -> dict:
    path = Path(stack.env["DATA_DIR"]) / "artifacts" / "jobs" / job_id / "preprocessing.json"
    return json.loads(path.read_text())


def dataset_count(api) -> int:
    return api.get("/v1/datasets").json()["total"]


def test_catalog_lists_builtins_with_parameters_and_shapes(api, stack):
    r = api.get("/v1/datasets/builtin")
    assert r.status_code == 200, r.text
    items = {b["name"]: b for b in r.json()["items"]}
    assert list(items) == list(BUILTIN_SPECS)
    moons = items["moons"]
    assert moons["defaults"] == {"n_samples": 200, "noise": 0.1, "seed": 0}
    assert moons["parameters"]["noise"]["minimum"] == 0 and moons["parameters"]["noise"]["maximum"] == 10
    assert (moons["rows"], moons["feature_shape"], moons["num_classes"]) == (200, [2], 2)
    assert items["digits"]["feature_shape"] == [1, 8, 8]
    assert items["sine_sequence"]["feature_shape"] == [20, 1] and items["sine_sequence"]["task"] == "regression"
    with stack.client(None) as anon:
        assert anon.get("/v1/datasets/builtin").status_code == 401


@pytest.mark.parametrize("name", list(BUILTIN_SPECS))
def test_every_builtin_dry_runs_without_storing_anything(api, name):
    shape = builtin.shapes(name, **BUILTIN_SPECS[name](name=name).params())
    outputs = shape.num_classes or 1
    loss = "cross_entropy" if shape.num_classes else "mse"
    before = dataset_count(api)
    r = api.post("/v1/jobs?dry_run=true", json=spec_for(name, outputs, loss, flatten=True,
                                                         validation_split=0.2))
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["train_rows"] + plan["validation_rows"] == shape.rows
    assert plan["layers"][0]["input_shape"] == list(shape.feature_shape)
    assert dataset_count(api) == before


def test_iris_standardized_trains_well_and_saves_its_preprocessing(api, stack):
    spec = spec_for("iris", data={"standardize": True}, epochs=60, validation_split=0.2)
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    job = wait_for(api, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["latest_metrics"]["val_accuracy"] > 0.9

    ds = api.get(f"/v1/datasets/{job['dataset_id']}").json()
    assert (ds["name"], ds["source_format"], ds["rows"]) == ("iris", "builtin", 150)
    assert ds["classes"] == ["setosa", "versicolor", "virginica"] and ds["feature_shape"] == [4]

    # The saved statistics are the training split's, and with the weights they rebuild the model.
    pre = preprocessing_of(stack, job["id"])
    assert pre["feature_shape"] == [4] and pre["targets"] == "index"
    iris = builtin.load("iris")
    assert not np.allclose(pre["standardize"]["mean"], iris.x.astype(np.float64).mean(axis=0))
    served = api.get(f"/v1/jobs/{job['id']}/spec").json()
    assert served["spec"]["dataset"] == {"name": "iris"}
    model = build_model(JobSpec.model_validate(served["spec"]).model, served["input_shape"])
    model.load_state_dict(load(api.get(f"/v1/jobs/{job['id']}/weights").content))
    model.eval()
    with torch.no_grad():
        predicted = model(torch.as_tensor(apply_preprocessing(iris.x, pre))).argmax(1).numpy()
    assert (predicted == iris.y).mean() > 0.9


def test_a_builtin_with_parameters_becomes_one_dataset_row_per_tenant(api, other_api):
    moons = {"name": "moons", "n_samples": 300, "noise": 0.2, "seed": 1}
    first = api.post("/v1/jobs", json=spec_for(moons, 2, epochs=3))
    assert first.status_code == 202, first.text
    ds = api.get(f"/v1/datasets/{first.json()['dataset_id']}").json()
    assert ds["name"] == "moons(n_samples=300,noise=0.2,seed=1)"
    assert (ds["source_format"], ds["rows"], ds["feature_shape"], ds["classes"]) == ("builtin", 300, [2], [0, 1])

    before = dataset_count(api)
    again = api.post("/v1/jobs", json=spec_for(moons, 2, epochs=3, seed=2)).json()
    assert again["dataset_id"] == ds["id"] and dataset_count(api) == before
    other_seed = api.post("/v1/jobs", json=spec_for({**moons, "seed": 2}, 2, epochs=3)).json()
    assert other_seed["dataset_id"] != ds["id"] and dataset_count(api) == before + 1

    # Another tenant gets its own row, and cannot see this one.
    theirs = other_api.post("/v1/jobs", json=spec_for(moons, 2, epochs=3)).json()
    assert theirs["dataset_id"] != ds["id"]
    assert other_api.get(f"/v1/datasets/{ds['id']}").status_code == 404
    # The uploaded id of the builtin's row works as a dataset too.
    by_id = api.post("/v1/jobs", json=spec_for(ds["id"], 2, epochs=3)).json()
    for job in (first.json(), again, other_seed, by_id):
        assert wait_for(api, job["id"])["status"] == "succeeded"
    assert wait_for(other_api, theirs["id"])["status"] == "succeeded"


def test_one_hot_targets_train_with_mse(api, stack):
    r = api.post("/v1/jobs", json=spec_for({"name": "blobs", "centers": 4, "seed": 3}, 4, "mse",
                                           data={"targets": "one_hot", "standardize": True}))
    assert r.status_code == 202, r.text
    job = wait_for(api, r.json()["id"])
    assert job["status"] == "succeeded", job
    pre = preprocessing_of(stack, job["id"])
    assert pre["targets"] == "one_hot" and pre["num_classes"] == 4 and len(pre["standardize"]["std"]) == 2


def test_job_validates_on_a_separate_dataset(api):
    x, y = blobs(120, seed=0)
    xv, yv = blobs(50, seed=1)
    train_ds, val_ds = upload_npz(api, x, y), upload_npz(api, xv, yv)
    spec = spec_for(train_ds["id"], data={"standardize": True, "validation_dataset": val_ds["id"]},
                    epochs=40)
    plan = api.post("/v1/jobs?dry_run=true", json=spec).json()
    assert (plan["train_rows"], plan["validation_rows"]) == (120, 50)

    created = api.post("/v1/jobs", json=spec).json()
    # A queued or running job validates on it: it cannot be deleted under the job.
    assert api.delete(f"/v1/datasets/{val_ds['id']}").status_code == 409
    job = wait_for(api, created["id"])
    assert job["status"] == "succeeded", job

    local = []
    train(JobSpec.model_validate(spec), x, y, torch.device("cpu"),
          Hooks(flush=lambda points, e, s: local.extend(points), flush_seconds=0), (xv, yv))
    served = api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert [p["val_loss"] for p in served] == [p["val_loss"] for p in local if p["kind"] == "epoch"]
    assert served[-1]["val_accuracy"] > 0.9
    assert api.delete(f"/v1/datasets/{val_ds['id']}").status_code == 204


BAD = [
    ({"dataset": {"name": "moons", "noise": -1}}, "dataset.noise", "greater than or equal to 0"),
    ({"dataset": {"name": "moons", "colour": "red"}}, "dataset.colour", "Extra inputs"),
    ({"dataset": {"name": "mons"}}, "dataset.name", "'moons'"),
    ({"dataset": {"name": "blobs", "n_samples": 100000, "n_features": 100}}, "dataset.n_features",
     "over the limit"),
    ({"dataset": "mons"}, "dataset", "no dataset 'mons'"),
    ({"data": {"validation_dataset": "ds_x"}, "training": {"validation_split": 0.2}}, "data",
     "validation_split to 0"),
    ({"data": {"validation_dataset": "ds_missing"}}, "data.validation_dataset", "no dataset"),
    ({"data": {"targets": "one_hot"}}, "data.targets", "class indices"),
    ({"data": {"standardise": True}}, "data.standardise", "Extra inputs"),
]


@pytest.mark.parametrize("change,field,words", BAD, ids=[b[1] + "-" + b[2] for b in BAD])
def test_bad_dataset_choices_are_422_naming_the_field(api, change, field, words):
    before = dataset_count(api)
    spec = {**spec_for("iris"), **change}
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 422, r.text
    assert words in errors_for(r)[field]
    assert dataset_count(api) == before


def test_validation_dataset_of_another_shape_is_refused(api):
    x, y = blobs(40)
    other = upload_npz(api, np.zeros((10, 3), np.float32), np.zeros(10, np.int64))
    r = api.post("/v1/jobs", json=spec_for(upload_npz(api, x, y)["id"],
                                           data={"validation_dataset": other["id"]}))
    assert r.status_code == 422
    assert "[3]" in errors_for(r)["data.validation_dataset"]
