"""A job's life through the HTTP API, on both deployments, with a real worker."""
import numpy as np
import torch
from safetensors.torch import load

from app.ml.build import build_model
from app.ml.spec import JobSpec
from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for
from worker.training import Hooks, train


def test_job_trains_and_serves_weights_matching_a_local_run(api):
    x, y = blobs(120)
    ds = upload_npz(api, x, y)
    spec = mlp_spec(ds["id"], epochs=6)

    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["status"] == "queued"
    assert created["parameter_count"] == 4 * 16 + 16 + 16 * 3 + 3
    assert created["progress"] == {"epoch": 0, "epochs": 6, "step": 0, "total_steps": 6 * 6}

    job = wait_for(api, created["id"])
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1 and job["device"] == "cpu"
    assert job["progress"] == {"epoch": 6, "epochs": 6, "step": 36, "total_steps": 36}
    assert job["started_at"] and job["finished_at"] >= job["started_at"]
    assert job["latest_metrics"]["epoch"] == 6

    # The service's history is exactly what the same training computes locally.
    local = []
    model = train(JobSpec.model_validate(spec), x, y, torch.device("cpu"),
                  Hooks(flush=lambda points, e, s: local.extend(points), flush_seconds=0)).model
    history = api.get(f"/v1/jobs/{job['id']}/metrics").json()
    local_epochs = [p for p in local if p["kind"] == "epoch"]
    local_steps = [p for p in local if p["kind"] == "step"]
    assert [p["train_loss"] for p in history["epochs"]] == [p["train_loss"] for p in local_epochs]
    assert [p["val_loss"] for p in history["epochs"]] == [p["val_loss"] for p in local_epochs]
    assert [(p["step"], p["train_loss"]) for p in history["steps"]] == \
        [(p["step"], p["train_loss"]) for p in local_steps]
    assert [p["step"] for p in history["steps"]] == list(range(2, 37, 2))
    first = history["epochs"][0]
    assert 0 <= first["val_accuracy"] <= 1 and first["lr"] == 0.1 and first["samples_per_second"] > 0
    assert set(first["grad_norms"]) == {"layers[0]", "layers[2]"} and first["grad_norm"] > 0
    assert first["param_norms"]["layers[0]"] > 0

    # Weights: safetensors that load into the model rebuilt from GET /spec.
    w = api.get(f"/v1/jobs/{job['id']}/weights")
    assert w.status_code == 200 and w.headers["content-type"] == "application/octet-stream"
    served = api.get(f"/v1/jobs/{job['id']}/spec").json()
    rebuilt = build_model(JobSpec.model_validate(served["spec"]).model, served["input_shape"])
    rebuilt.load_state_dict(load(w.content))
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key


def test_metrics_after_step_returns_only_later_points(api):
    x, y = blobs(64)
    ds = upload_npz(api, x, y)
    job = wait_for(api, api.post("/v1/jobs", json=mlp_spec(ds["id"], epochs=3)).json()["id"])
    full = api.get(f"/v1/jobs/{job['id']}/metrics").json()
    later = api.get(f"/v1/jobs/{job['id']}/metrics", params={"after_step": 6}).json()
    assert [p["step"] for p in later["steps"]] == [p["step"] for p in full["steps"] if p["step"] > 6]
    assert [p["epoch"] for p in later["epochs"]] == [p["epoch"] for p in full["epochs"] if p["step"] > 6]
    assert later["last_step"] == full["last_step"] == job["progress"]["step"]


def test_full_batch_regression_with_adam(api):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)
    ds = upload_npz(api, x, y)
    spec = {"dataset": ds["id"], "model": {"layers": [{"type": "linear", "out_features": 1}]},
            "loss": {"type": "mse"}, "optimizer": {"type": "adam", "lr": 0.1},
            "training": {"epochs": 60, "batch_size": "full", "log_every_steps": 1}}
    job = wait_for(api, api.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "succeeded", job
    history = api.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert len(history["steps"]) == 60 and len(history["epochs"]) == 60
    assert history["epochs"][-1]["train_loss"] < 0.01 * history["epochs"][0]["train_loss"]
    assert history["epochs"][0]["val_loss"] is None


def test_metrics_pages_never_split_a_step(api):
    x, y = blobs(40)
    ds = upload_npz(api, x, y)
    # 40 rows, batch 8, log every step: each epoch's last step has a step and an epoch point.
    job = wait_for(api, api.post("/v1/jobs", json=mlp_spec(ds["id"], epochs=3, batch_size=8,
                                                             validation_split=0,
                                                             log_every_steps=1)).json()["id"])
    full = api.get(f"/v1/jobs/{job['id']}/metrics").json()
    pages, after = [], -1
    while True:
        page = api.get(f"/v1/jobs/{job['id']}/metrics", params={"after_step": after, "limit": 4}).json()
        if not page["steps"] and not page["epochs"]:
            break
        pages.append(page)
        after = page["last_step"]
    assert [p for page in pages for p in page["steps"]] == full["steps"]
    assert [p for page in pages for p in page["epochs"]] == full["epochs"]
    assert len(full["steps"]) == 15 and len(full["epochs"]) == 3
