"""Builtin datasets and data options trained through the HTTP API, on both deployments
(their catalog, dry runs and refusals are tests/api/test_builtin_datasets.py's)."""
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load

from app.ml import builtin_datasets as builtin
from app.ml.build import build_model
from app.ml.preprocessing import apply_preprocessing
from app.ml.spec import JobSpec
from tests.e2e.helpers import blobs, spec_for, upload_npz, wait_for
from worker.training import Hooks, train


def preprocessing_of(stack, job_id: str) -> dict:
    path = Path(stack.env["DATA_DIR"]) / "artifacts" / "jobs" / job_id / "preprocessing.json"
    return json.loads(path.read_text())


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
