"""init and distill through real API and worker processes: a standardized source and teacher,
so the worker reads their preprocessing and weights from the artifact store."""
import numpy as np

from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for


def train(api, spec: dict) -> dict:
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    job = wait_for(api, r.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def first_loss(api, job_id: str) -> float:
    return api.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"][0]["train_loss"]


def test_a_warm_start_and_a_distilled_student_through_the_api(api):
    dataset = upload_npz(api, *blobs(150, seed=2))["id"]
    standardized = {"data": {"standardize": True}}
    source = train(api, {**mlp_spec(dataset, epochs=30), **standardized})["id"]
    cold = train(api, {**mlp_spec(dataset, epochs=1, seed=8), **standardized})["id"]
    warm = train(api, {**mlp_spec(dataset, epochs=1, seed=8), **standardized, "init": {"from_job": source}})["id"]
    assert first_loss(api, warm) < 0.25 * first_loss(api, cold)

    student = {**mlp_spec(dataset, epochs=5), "model": {"layers": [{"type": "linear", "out_features": 3}]},
               "distill": {"teacher": source, "temperature": 2.0, "alpha": 0.5}}
    job = train(api, student)
    assert np.isfinite(job["latest_metrics"]["val_loss"])
