"""Cancel: a waiting job at once and never trained, a running one within 2 s, a finished one 409
(another tenant's cancel is a 404: tests/api/test_auth.py)."""
import time

from tests.e2e.helpers import (blobs, dropped, mlp_spec, running_events, upload_npz, wait_for,
                               wait_for_worker_log)


def assert_never_trained(stack, api, job_id: str) -> None:
    """Once a worker has received the job's message: it dropped it before the training
    process (the job is not waiting), and the job has no attempt, no start, no `running`
    event, no weights."""
    wait_for_worker_log(stack, dropped(job_id))
    never = api.get(f"/v1/jobs/{job_id}").json()
    assert never["status"] == "cancelled" and never["attempts"] == 0, never
    assert never["started_at"] is None and never["attempt_history"] == []
    assert running_events(api, job_id) == []
    assert api.get(f"/v1/jobs/{job_id}/weights").status_code == 409


def test_cancel_waiting_running_and_finished_jobs(stack, api):
    x, y = blobs(400)
    ds = upload_npz(api, x, y)
    long = mlp_spec(ds["id"], epochs=400, batch_size=4, log_every_steps=25)
    running = api.post("/v1/jobs", json=long).json()
    waiting = api.post("/v1/jobs", json={**long, "training": {**long["training"], "seed": 9}}).json()
    wait_for(api, running["id"], statuses=("running",))

    # The stack's one worker trains `running`, so `waiting` is surely queued (a 200, not a
    # 202) and its message still in the broker; the worker receives it once it is free.
    r = api.post(f"/v1/jobs/{waiting['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    while api.get(f"/v1/jobs/{running['id']}").json()["progress"]["step"] < 50:
        time.sleep(0.05)
    asked = time.monotonic()
    r = api.post(f"/v1/jobs/{running['id']}/cancel")
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    done = wait_for(api, running["id"], timeout=10)
    assert done["status"] == "cancelled" and time.monotonic() - asked < 2.0
    assert done["error"] == "cancelled by request"
    steps = api.get(f"/v1/jobs/{running['id']}/metrics").json()["steps"]
    assert steps and steps[-1]["step"] <= done["progress"]["step"]  # the metrics so far are kept

    for job in (running, waiting):
        again = api.post(f"/v1/jobs/{job['id']}/cancel")
        assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    # The waiting job was never trained, even though its message is still delivered.
    assert_never_trained(stack, api, waiting["id"])


def test_time_limit_ends_the_job_failed_with_the_reason(api):
    x, y = blobs(400)
    ds = upload_npz(api, x, y)
    spec = mlp_spec(ds["id"], epochs=400, batch_size=2, max_seconds=1.5)
    job = wait_for(api, api.post("/v1/jobs", json=spec).json()["id"], timeout=60)
    assert job["status"] == "failed" and job["error"].startswith("time limit")
    assert 1.5 <= (_seconds(job["finished_at"]) - _seconds(job["started_at"])) < 6
    assert job["progress"]["step"] > 0  # the metrics so far are kept


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_cancel_under_load_ends_every_job_cancelled(stack, api):
    x, y = blobs(400)
    ds = upload_npz(api, x, y)
    spec = mlp_spec(ds["id"], epochs=400, batch_size=4)
    jobs = [api.post("/v1/jobs", json={**spec, "training": {**spec["training"], "seed": s}}).json()
            for s in range(6)]
    wait_for(api, jobs[0]["id"], statuses=("running",))
    asked = time.monotonic()
    codes = [api.post(f"/v1/jobs/{j['id']}/cancel").status_code for j in jobs]
    assert codes[0] == 202 and set(codes[1:]) <= {200, 202}
    for job in jobs:
        done = wait_for(api, job["id"], timeout=10)
        assert done["status"] == "cancelled", done
    assert time.monotonic() - asked < 2.5
    for job in jobs[1:]:  # cancelled while waiting: their messages, received later, train nothing
        assert_never_trained(stack, api, job["id"])
