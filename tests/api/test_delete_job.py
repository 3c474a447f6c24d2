"""DELETE /v1/jobs/{id}: an ended job goes with its metrics, events and every file of its folder in
the real artifact store; a job that may still train is a 409 naming the cancel call, a study's
member a 409 naming the study's delete; a second delete, and another tenant's, are 404s."""
import pytest
from sqlalchemy import func, select

from app.db import session_scope
from app.models import JobEvent, Metric
from app.storage import get_store, job_folder
from tests.api.routes import ended_job, held_study, queued_job
from tests.e2e.helpers import blobs, errors_for, mlp_spec, upload_npz
from worker.runner import run_job


@pytest.fixture
def dataset(api) -> dict:
    return upload_npz(api, *blobs(100))


def rows_of(job_id: str) -> tuple[int, int]:
    with session_scope() as db:
        return tuple(db.scalar(select(func.count()).select_from(t).where(t.job_id == job_id))
                     for t in (Metric, JobEvent))


@pytest.mark.services
def test_deleting_a_trained_job_removes_its_row_history_and_files(api, other_api, dataset):
    r = api.post("/v1/jobs", json={**mlp_spec(dataset["id"], epochs=2), "data": {"standardize": True}})
    job_id = r.json()["id"]
    run_job(job_id)  # the worker's runner, in this process: weights, checkpoint, preprocessing
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
    assert api.get(f"/v1/jobs/{job_id}/weights", params={"format": "onnx"}).status_code == 200
    store, folder = get_store(), job_folder(job_id)
    assert {f"{folder}/{n}" for n in ("weights.safetensors", "preprocessing.json", "model.onnx")} <= \
        set(store.keys(folder))
    metrics, events = rows_of(job_id)
    assert metrics > 0 and events > 0

    assert other_api.delete(f"/v1/jobs/{job_id}").status_code == 404  # another tenant's: not found, kept
    assert store.keys(folder)
    r = api.delete(f"/v1/jobs/{job_id}")
    assert r.status_code == 204 and r.content == b""
    assert store.keys(folder) == []
    assert rows_of(job_id) == (0, 0)
    for path in ("", "/metrics", "/spec", "/weights", "/events"):
        assert api.get(f"/v1/jobs/{job_id}{path}").status_code == 404, path
    assert api.get("/v1/jobs").json()["total"] == 0
    r = api.delete(f"/v1/jobs/{job_id}")
    assert r.status_code == 404 and job_id in r.json()["detail"]
    # Its dataset is the user's own and stays.
    assert api.get(f"/v1/datasets/{dataset['id']}").status_code == 200


def test_a_job_that_may_still_train_is_409_naming_the_cancel_call(api, dataset):
    job = queued_job(api, dataset["id"])
    r = api.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code == 409 and f"cancel it first: POST /v1/jobs/{job['id']}/cancel" in r.json()["detail"]
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"  # untouched
    api.post(f"/v1/jobs/{job['id']}/cancel")
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204


def test_an_ended_job_never_trained_is_deleted(api, dataset):
    job = ended_job(api, dataset["id"])
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert rows_of(job["id"]) == (0, 0)
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_a_studys_member_is_409_naming_the_studys_delete(api, dataset):
    study = held_study(api, dataset["id"])
    api.post(f"/v1/studies/{study['id']}/cancel")
    member = study["members"][0]["job_id"]
    r = api.delete(f"/v1/jobs/{member}")
    assert r.status_code == 409 and f"DELETE /v1/studies/{study['id']}" in r.json()["detail"], r.text
    assert api.get(f"/v1/jobs/{member}").status_code == 200
    assert api.delete(f"/v1/studies/{study['id']}").status_code == 204


def test_deleting_a_job_frees_its_idempotency_key(api, dataset):
    headers = {"Idempotency-Key": f"gone-{dataset['id']}"}
    first = api.post("/v1/jobs", json=mlp_spec(dataset["id"]), headers=headers).json()
    api.post(f"/v1/jobs/{first['id']}/cancel")
    assert api.delete(f"/v1/jobs/{first['id']}").status_code == 204
    again = api.post("/v1/jobs", json=mlp_spec(dataset["id"]), headers=headers)
    assert again.status_code == 202 and again.json()["id"] != first["id"]
    assert errors_for(api.delete("/v1/jobs/job_nothing")) == {}
