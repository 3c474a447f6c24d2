"""Schedules, regularization and L-BFGS trained through the HTTP API (their refusals and the
spec's JSON Schema: tests/api/test_bad_specs.py)."""
import numpy as np

from tests.e2e.helpers import diverging_spec, upload_npz, wait_for


def test_lbfgs_full_batch_with_schedule_and_regularization(api):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    y = (np.sin(x[:, 0]) + x[:, 1] * x[:, 2]).astype(np.float32)
    ds = upload_npz(api, x, y)
    spec = {"dataset": ds["id"],
            "model": {"layers": [{"type": "linear", "out_features": 16}, {"type": "tanh"},
                                 {"type": "linear", "out_features": 1}]},
            "loss": {"type": "huber", "delta": 1.0},
            "optimizer": {"type": "lbfgs", "line_search_fn": "strong_wolfe"},
            "schedule": {"type": "step", "step_size": 5, "gamma": 0.5},
            "regularization": {"l2": 1e-4, "grad_clip": {"type": "norm", "max_norm": 10}},
            "training": {"epochs": 12, "batch_size": "full", "validation_split": 0.2, "log_every_steps": 1}}
    job = wait_for(api, api.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "succeeded", job
    epochs = api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert [e["lr"] for e in epochs] == [1.0] * 5 + [0.5] * 5 + [0.25] * 2
    assert epochs[-1]["train_loss"] < 0.5 * epochs[0]["train_loss"]


def test_early_stopping_ends_the_job_early_and_says_so(api):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 2)).astype(np.float32)
    ds = upload_npz(api, x, (x[:, 0] > 0).astype(np.int64))
    spec = {"dataset": ds["id"], "model": {"layers": [{"type": "linear", "out_features": 2}]},
            "loss": {"type": "cross_entropy"}, "optimizer": {"type": "sgd", "lr": 1e-4},
            "regularization": {"early_stopping": {"monitor": "train_loss", "patience": 2, "min_delta": 1.0}},
            "training": {"epochs": 50, "batch_size": 16}}
    job = wait_for(api, api.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "succeeded"
    assert job["progress"]["epoch"] == 3 and job["progress"]["epochs"] == 50
    assert job["latest_metrics"]["stopped_early"] is True and job["latest_metrics"]["best_epoch"] == 1


def test_divergence_fails_the_job_with_the_reason(api):
    job = wait_for(api, api.post("/v1/jobs", json=diverging_spec(api)).json()["id"])
    assert job["status"] == "failed"
    assert job["error"].startswith("diverged at epoch ") and "loss became" in job["error"]
    steps = api.get(f"/v1/jobs/{job['id']}/metrics").json()["steps"]
    assert steps and all(s["train_loss"] is not None for s in steps)


def test_rollback_recovers_from_divergence_and_keeps_one_history(api):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 3)) * 3).astype(np.float32)
    ds = upload_npz(api, x, (x @ np.array([1.0, -2.0, 0.5])).astype(np.float32))
    spec = {"dataset": ds["id"],
            "model": {"layers": [{"type": "linear", "out_features": 8}, {"type": "relu"},
                                 {"type": "linear", "out_features": 1}]},
            "loss": {"type": "mse"}, "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
            "training": {"epochs": 6, "batch_size": 8, "log_every_steps": 1,
                         "on_divergence": "rollback", "max_rollbacks": 6}}
    job = wait_for(api, api.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["latest_metrics"]["rollbacks"] >= 1
    history = api.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert [p["step"] for p in history["steps"]] == list(range(1, 49))
    assert [p["epoch"] for p in history["epochs"]] == list(range(1, 7))
    assert all(p["rollbacks"] >= 1 for p in history["epochs"][-1:])


def test_full_batch_methods_train_through_the_service(api):
    """newton, levenberg_marquardt, conjugate_gradient and scaled_conjugate_gradient as a user runs
    them: through the API and a worker process, checkpointing every epoch, then predicting."""
    x = np.linspace(-np.pi, np.pi, 80, dtype=np.float32)[:, None]
    ds = upload_npz(api, x, np.sin(x[:, 0]).astype(np.float32))
    base = {"dataset": ds["id"], "loss": {"type": "mse"},
            "model": {"layers": [{"type": "linear", "out_features": 10}, {"type": "tanh"},
                                 {"type": "linear", "out_features": 1}]},
            "training": {"epochs": 25, "batch_size": "full", "validation_split": 0.2, "checkpoint_every": 5}}
    ids = {m: api.post("/v1/jobs", json={**base, "optimizer": {"type": m}}).json()["id"]
           for m in ("newton", "levenberg_marquardt", "conjugate_gradient", "scaled_conjugate_gradient")}
    for method, job_id in ids.items():
        job = wait_for(api, job_id)
        assert job["status"] == "succeeded", (method, job["error"])
        epochs = api.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
        assert len(epochs) == 25 and epochs[-1]["train_loss"] < 0.02 * epochs[0]["train_loss"], method
        assert epochs[-1]["val_loss"] is not None
        out = api.post(f"/v1/jobs/{job_id}/predict", json={"inputs": x.tolist()})
        assert out.status_code == 200, out.text
        # The trained weights answer: their error over all rows is of the order of the last losses.
        error = float(np.mean((np.array(out.json()["outputs"])[:, 0] - np.sin(x[:, 0])) ** 2))
        assert error < 2 * max(epochs[-1]["train_loss"], epochs[-1]["val_loss"]), method
