"""LOG_FORMAT=json and GET /metrics on a real deployment: an API process and a Celery worker."""
import json

import pytest

from tests.conftest import TEST_LIMITS
from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for
from tests.stack import Stack


@pytest.fixture(scope="module")
def json_stack(tmp_path_factory):
    stack = Stack("json-logs", tmp_path_factory.mktemp("json-logs"), {**TEST_LIMITS, "LOG_FORMAT": "json"})
    try:
        yield stack.start()
    finally:
        stack.stop()


def log_lines(stack: Stack, name: str) -> list[dict]:
    """The JSON lines of one process's log (Celery's banner and the CLI's console lines are not logging's)."""
    text = (stack.tmp / f"{name}.log").read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_jobs_worker_lines_carry_its_fields(json_stack):
    api = json_stack.client(json_stack.new_key("logs"))
    job = api.post("/v1/jobs", json=mlp_spec(upload_npz(api, *blobs(60))["id"], epochs=3)).json()
    done = wait_for(api, job["id"])
    assert done["status"] == "succeeded", done
    lines = log_lines(json_stack, "worker0")
    assert any(" ready." in line["message"] for line in lines)  # Celery's own lines are JSON too
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= set(line), line
    mine = [line for line in lines if line.get("job_id") == job["id"]]
    messages = [line["message"] for line in mine]
    assert f"training job {job['id']}, attempt 1" in messages and f"job {job['id']} succeeded" in messages, lines
    # Every line from the claim on (the attempt known) carries the lot.
    claimed = [line for line in mine if "attempt" in line]
    assert claimed and len({(line["tenant"], line["attempt"], line["worker"]) for line in claimed}) == 1
    first = claimed[0]
    assert first["tenant"].startswith("tn_") and first["attempt"] == 1 and first["worker"] == done["attempt_history"][0]["worker"]


def test_the_api_logs_json_and_its_metrics_see_the_worker(json_stack):
    api = json_stack.client(json_stack.new_key("scrape"))
    job = api.post("/v1/jobs", json=mlp_spec(upload_npz(api, *blobs(60))["id"], epochs=2)).json()
    assert wait_for(api, job["id"])["status"] == "succeeded"
    scraped = json_stack.client(None).get("/metrics")
    assert scraped.status_code == 200
    text = scraped.text
    # The worker's registry row, its heartbeat and its jobs, from the database: the worker has no endpoint.
    assert 'trainyard_workers{kind="cpu",state="idle"} 1.0' in text or \
        'trainyard_workers{kind="cpu",state="busy"} 1.0' in text, text
    assert "trainyard_worker_heartbeat_age_seconds{" in text
    assert 'trainyard_job_run_seconds_count{queue="cpu",status="succeeded"}' in text
    assert 'trainyard_http_requests_total{method="POST",route="/v1/jobs",status="202"}' in text
    access = [line for line in log_lines(json_stack, "api") if line["logger"] == "uvicorn.access"]
    assert any("POST /v1/jobs " in line["message"] for line in access), access
    # A request on the job's path logs with its id; one on another path without one.
    polls = [line for line in access if f"GET /v1/jobs/{job['id']} " in line["message"]]
    assert polls and all(line["job_id"] == job["id"] for line in polls), polls
    assert all("job_id" not in line for line in access if "/metrics" in line["message"])
