"""Chaos with real processes: a private Redis and PostgreSQL are killed under running jobs.

Each test runs its own deployment on servers it started itself (tests/chaos/servers.py),
never the machine's shared ones.
"""
import time
from contextlib import contextmanager
from datetime import datetime

import httpx
import pytest

from app.workers import routing
from tests.conftest import TEST_LIMITS
from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for
from tests.stack import Stack

FAST = {"LEASE_SECONDS": "3", "HEARTBEAT_SECONDS": "0.3", "REAPER_INTERVAL_SECONDS": "0.5",
        "RESEND_AFTER_SECONDS": "2", "DB_RETRY_SECONDS": "60", **TEST_LIMITS}


@contextmanager
def running_stack(tmp_path, redis, postgres, **env: str):
    stack = Stack("chaos", tmp_path, {**FAST, "DATABASE_URL": postgres.url, "BROKER_URL": redis.url, **env})
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def chaos_stack(tmp_path, private_redis, private_postgres):
    with running_stack(tmp_path, private_redis, private_postgres) as stack:
        yield stack


def _steps_are_one_run(api, job_id: str, total: int) -> None:
    steps = [p["step"] for p in api.get(f"/v1/jobs/{job_id}/metrics").json()["steps"]]
    assert steps == list(range(10, total + 1, 10)), steps[:20]


def test_redis_killed_and_restarted_loses_no_job_and_trains_none_twice(chaos_stack, private_redis):
    with chaos_stack.client(chaos_stack.new_key("redis")) as api:
        x, y = blobs(200)
        ds = upload_npz(api, x, y)
        specs = [mlp_spec(ds["id"], epochs=15, batch_size=4, log_every_steps=10, seed=s) for s in range(3)]
        jobs = [api.post("/v1/jobs", json=s).json() for s in specs]
        wait_for(api, jobs[0]["id"], statuses=("running",))
        private_redis.kill()  # the queued jobs' messages die with it (no persistence)
        time.sleep(1.0)
        private_redis.restart()
        for job in jobs:
            done = wait_for(api, job["id"], timeout=120)
            assert done["status"] == "succeeded", (done, chaos_stack.logs())
            assert done["attempts"] == 1  # trained once: resent messages lost the claim
            _steps_are_one_run(api, job["id"], 15 * 38)


def test_a_job_submitted_while_redis_is_down_starts_once_it_is_back(tmp_path, private_redis, private_postgres):
    # Resending by age would take 10 minutes here: the job must start because its failed
    # publish marked it unsent, which the reaper's next sweep (every 0.5 s) sends again.
    with running_stack(tmp_path, private_redis, private_postgres, RESEND_AFTER_SECONDS="600") as stack, \
            stack.client(stack.new_key("unsent")) as api:
        x, y = blobs(200)
        ds = upload_npz(api, x, y)
        private_redis.kill()
        started = time.monotonic()
        created = api.post("/v1/jobs", json=mlp_spec(ds["id"], epochs=2))
        assert created.status_code == 202 and time.monotonic() - started < 10, created.text
        job = created.json()
        assert job["status"] == "queued"
        assert job["waiting_reason"] == routing.UNSENT_REASON
        time.sleep(1.5)  # a few sweeps fail to send it too
        assert api.get(f"/v1/jobs/{job['id']}").json()["waiting_reason"] == routing.UNSENT_REASON
        private_redis.restart()
        done = wait_for(api, job["id"], timeout=60)
        assert done["status"] == "succeeded", (done, stack.logs())
        assert done["attempts"] == 1


def test_postgres_down_is_a_503_and_training_continues_when_it_is_back(chaos_stack, private_postgres):
    with chaos_stack.client(chaos_stack.new_key("pg")) as api:
        x, y = blobs(200)
        ds = upload_npz(api, x, y)
        job = api.post("/v1/jobs", json=mlp_spec(ds["id"], epochs=25, batch_size=4,
                                                 log_every_steps=10)).json()
        wait_for(api, job["id"], statuses=("running",))
        private_postgres.kill()
        started = time.monotonic()
        r = api.get(f"/v1/jobs/{job['id']}")
        assert r.status_code == 503 and time.monotonic() - started < 10
        assert "database is unavailable" in r.json()["detail"] and r.headers["retry-after"]
        assert api.get("/readyz").status_code == 503
        time.sleep(2.0)
        private_postgres.start_again()
        done = wait_for(api, job["id"], timeout=120)
        assert done["status"] == "succeeded", (done["error"], done.get("attempt_history"))
        _steps_are_one_run(api, job["id"], 25 * 38)  # the worker retried its writes: no point lost


def test_api_restarted_while_jobs_run_keeps_jobs_metrics_and_stream(chaos_stack):
    with chaos_stack.client(chaos_stack.new_key("api")) as api:
        x, y = blobs(200)
        ds = upload_npz(api, x, y)
        job = api.post("/v1/jobs", json=mlp_spec(ds["id"], epochs=15, batch_size=4,
                                                 log_every_steps=10)).json()
        wait_for(api, job["id"], statuses=("running",))
        Stack._stop(chaos_stack.api)
        with pytest.raises(httpx.HTTPError):
            api.get(f"/v1/jobs/{job['id']}")
        chaos_stack.api = chaos_stack._spawn("api2", "api", "--port", str(chaos_stack.port))
        chaos_stack.wait_ready()
        done = wait_for(api, job["id"], timeout=120)
        assert done["status"] == "succeeded"
        _steps_are_one_run(api, job["id"], 15 * 38)
        with api.stream("GET", f"/v1/jobs/{job['id']}/events") as events:
            kinds = [line for line in events.iter_lines() if line.startswith("event:")]
        assert kinds[0] == "event: status" and kinds[-1] == "event: end"


def test_jobs_stranded_by_a_redis_restart_start_within_seconds_with_the_default_settings(
        tmp_path, private_redis, private_postgres):
    # The default settings (RESEND_AFTER_SECONDS=300, REAPER_INTERVAL_SECONDS=15): the queued
    # jobs' messages die with Redis, and the worker sends them again as soon as it is
    # connected again, not once they are 300 s old (worker/celery_app.BrokerReturn); with
    # them the one submitted while Redis was down, not at the next sweep.
    env = {**TEST_LIMITS, "DATABASE_URL": private_postgres.url, "BROKER_URL": private_redis.url}
    stack = Stack("chaos-defaults", tmp_path, env).start()
    try:
        with stack.client(stack.new_key("restart")) as api:
            x, y = blobs(200)
            ds = upload_npz(api, x, y)
            specs = [mlp_spec(ds["id"], epochs=15, batch_size=4, seed=s) for s in range(3)]
            first, *stranded = [api.post("/v1/jobs", json=s).json() for s in specs]
            wait_for(api, first["id"], statuses=("running",))
            private_redis.kill()  # the worker holds the running job's message; the others are lost
            unsent = api.post("/v1/jobs", json=mlp_spec(ds["id"], epochs=15, batch_size=4, seed=3)).json()
            assert unsent["waiting_reason"] == routing.UNSENT_REASON, unsent
            stranded.append(unsent)
            time.sleep(1.0)
            private_redis.restart()
            back = time.time()
            done = [wait_for(api, job["id"], timeout=60) for job in [first, *stranded]]
            for job in done:
                assert job["status"] == "succeeded" and job["attempts"] == 1, (job, stack.logs())
            # The stranded jobs were trained within seconds of Redis's return, one after the
            # other behind the running one (each trains for a few seconds here).
            ended = max(datetime.fromisoformat(job["finished_at"]).timestamp() for job in done)
            assert ended - back < 30, (ended - back, stack.logs())
    finally:
        stack.stop()
