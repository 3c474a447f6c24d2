"""Two machines that share only PostgreSQL, Redis and an S3 store (a real moto server process):
the API and the worker each have their own data folder, and everything a job makes crosses
through the store; store outages during a job cost checkpoints or an attempt, never the job."""
import os
import signal
import time
import uuid

import numpy as np
import pytest
from safetensors.numpy import load

from tests.conftest import REDIS_URL, TEST_LIMITS, fresh_postgres_database
from tests.e2e.helpers import blobs, mlp_spec, npz_bytes, training_child, upload_npz, wait_for, wait_for_worker_log
from tests.s3server import s3  # noqa: F401 - fixture
from tests.stack import Stack

FAST = {"LEASE_SECONDS": "2", "HEARTBEAT_SECONDS": "0.3", "REAPER_INTERVAL_SECONDS": "0.5",
        "CHECKPOINT_MIN_GAP_SECONDS": "0.3", "MAX_ATTEMPTS": "3", "MAX_EPOCHS": "2000"}


@pytest.fixture(scope="module")
def machines(s3, tmp_path_factory):  # noqa: F811
    """(the API's machine, the worker's machine): one database, queue and store, two data folders."""
    with fresh_postgres_database() as database:
        env = {**TEST_LIMITS, **FAST, **s3.env(f"deploy-{uuid.uuid4().hex[:6]}"), "DATABASE_URL": database,
               "BROKER_URL": REDIS_URL, "QUEUE_NAME": f"trainyard-s3-{uuid.uuid4().hex[:8]}"}
        api_host = Stack("s3-api", tmp_path_factory.mktemp("api-machine"), env)
        worker_host = Stack("s3-worker", tmp_path_factory.mktemp("worker-machine"), env)
        try:
            api_host.start_api()
            worker_host.start_worker()
            api_host.wait_ready()
            yield api_host, worker_host
        finally:
            worker_host.stop()
            api_host.stop()


@pytest.fixture
def api(machines):
    api_host, _ = machines
    with api_host.client(api_host.new_key(f"s3-{uuid.uuid4().hex[:6]}")) as c:
        yield c


def test_a_job_crosses_machines_through_the_store(machines, api, s3):  # noqa: F811
    api_host, worker_host = machines
    prefix = api_host.env["ARTIFACT_URL"].split("/", 3)[3]
    x, y = blobs(120)
    ds = upload_npz(api, x, y)
    job = api.post("/v1/jobs", json=mlp_spec(ds["id"])).json()
    done = wait_for(api, job["id"])
    assert done["status"] == "succeeded", (done, api_host.logs(), worker_host.logs())
    r = api.get(f"/v1/jobs/{job['id']}/weights")
    assert r.status_code == 200 and load(r.content)
    onnx = api.get(f"/v1/jobs/{job['id']}/weights", params={"format": "onnx"})
    assert onnx.status_code == 200, onnx.text
    predicted = api.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": x[:5].tolist()})
    assert predicted.status_code == 200 and len(predicted.json()["labels"]) == 5
    names = s3.names(f"{prefix}/jobs/{job['id']}/")
    assert {n.rsplit("/", 1)[1] for n in names} >= {"weights.safetensors", "preprocessing.json", "model.onnx"}
    assert s3.names(f"{prefix}/datasets/")
    for host in machines:  # neither machine keeps an artifact folder: only cached copies
        assert not (host.tmp / "data" / "artifacts").exists()
    assert (worker_host.tmp / "data" / "cache" / "datasets").is_dir()
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert s3.names(f"{prefix}/jobs/{job['id']}/") == []


def test_a_store_outage_mid_job_costs_checkpoints_not_the_job(machines, api, s3):  # noqa: F811
    api_host, worker_host = machines
    x, y = blobs(200, seed=5)
    ds = upload_npz(api, x, y)
    job_id = api.post("/v1/jobs", json=mlp_spec(ds["id"], epochs=150, batch_size=2, log_every_steps=200,
                                                checkpoint_every=1)).json()["id"]
    first = wait_for_checkpoint(api, job_id, after=0)
    s3.gate.close()
    try:
        wait_for_worker_log(worker_host, "not stored (", count=2)
        assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "running"  # training went on
    finally:
        s3.gate.open()
    wait_for_worker_log(worker_host, "stored after")  # "... stored after N failed"
    wait_for_checkpoint(api, job_id, after=first)
    # A crash now: the next attempt reads back the last whole checkpoint and finishes the job.
    os.kill(training_child(worker_host.workers[0]), signal.SIGKILL)
    done = wait_for(api, job_id, timeout=300)
    assert done["status"] == "succeeded", (done, worker_host.logs())
    assert done["attempts"] == 2
    wait_for_worker_log(worker_host, f"job {job_id} resumes from step")
    assert load(api.get(f"/v1/jobs/{job_id}/weights").content)


def test_a_store_down_when_an_attempt_starts_sends_the_job_back(machines, api, s3):  # noqa: F811
    _, worker_host = machines
    x, y = blobs(90, seed=9)  # new data: no machine has a copy of it yet
    ds = upload_npz(api, x, y)
    s3.gate.close()
    try:
        job_id = api.post("/v1/jobs", json=mlp_spec(ds["id"])).json()["id"]
        wait_for_worker_log(worker_host, f"job {job_id}, attempt 1: the artifact store was unreachable")
        refused = api.post("/v1/datasets", files={"file": ("more.npz", npz_bytes(x=x[:30], y=y[:30]))})
        assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text
    finally:
        s3.gate.open()
    done = wait_for(api, job_id, timeout=120)
    assert done["status"] == "succeeded", (done, worker_host.logs())
    first = done["attempt_history"][0]
    assert first["outcome"] == "retrying" and "artifact store was unreachable" in first["reason"]
    assert np.isfinite(done["latest_metrics"]["train_loss"])


def wait_for_checkpoint(api, job_id: str, after: int, timeout: float = 120) -> int:
    """Until the job records a checkpoint later than step ``after``; its step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] in ("queued", "running"), job
        if (job["checkpoint_step"] or 0) > after:
            return job["checkpoint_step"]
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint after step {after}: {job}")
