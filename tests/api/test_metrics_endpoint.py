"""GET /metrics: Prometheus's text format, parsed back with prometheus-client's own parser.

The package's tests share one database, so each test compares a scrape before and after
what it does. Jobs are trained by the worker's runner in this process, workers and lost
leases made by the real registry and lifecycle functions.
"""
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, update

from app.config import get_settings
from app.db import session_scope
from app.jobs import lifecycle
from app.models import Job, Worker
from app.models.base import utcnow
from app.workers import repository as workers
from tests.api.routes import queued_job
from tests.e2e.helpers import blobs, upload_npz
from worker.runner import run_job

pytestmark = pytest.mark.services  # the durations are dialect-specific SQL: PostgreSQL too


def scrape(client) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_trained_job_shows_in_the_counts_and_histograms(api, anon):
    dataset = upload_npz(api, *blobs(60))
    before = scrape(anon)
    job = queued_job(api, dataset["id"], epochs=2)
    queued = scrape(anon)
    assert value(queued, "trainyard_jobs", status="queued", queue="cpu") == \
        value(before, "trainyard_jobs", status="queued", queue="cpu") + 1
    run_job(job["id"])
    after = scrape(anon)
    assert value(after, "trainyard_jobs", status="queued", queue="cpu") == \
        value(before, "trainyard_jobs", status="queued", queue="cpu")
    assert value(after, "trainyard_jobs", status="succeeded", queue="cpu") == \
        value(before, "trainyard_jobs", status="succeeded", queue="cpu") + 1
    for name, labels in [("trainyard_job_queue_wait_seconds", {"queue": "cpu"}),
                         ("trainyard_job_run_seconds", {"queue": "cpu", "status": "succeeded"})]:
        assert value(after, f"{name}_count", **labels) == value(before, f"{name}_count", **labels) + 1
        # Waited and trained well under a minute: in the 60 s bucket, not (only) in +Inf.
        assert value(after, f"{name}_bucket", **labels, le="60.0") == \
            value(before, f"{name}_bucket", **labels, le="60.0") + 1
        added = value(after, f"{name}_sum", **labels) - value(before, f"{name}_sum", **labels)
        assert 0 <= added < 60, (name, added)


def test_requests_are_counted_by_route_template_without_ids(api, anon):
    dataset = upload_npz(api, *blobs(60))
    job = queued_job(api, dataset["id"])
    before = scrape(anon)
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 200
    assert api.get("/v1/jobs/job_nothing_here").status_code == 404
    assert anon.get("/no/such/path").status_code == 404
    after = scrape(anon)
    route = {"method": "GET", "route": "/v1/jobs/{job_id}"}
    for status in ("200", "404"):
        assert value(after, "trainyard_http_requests_total", **route, status=status) == \
            value(before, "trainyard_http_requests_total", **route, status=status) + 1
    assert value(after, "trainyard_http_request_duration_seconds_count", **route) == \
        value(before, "trainyard_http_request_duration_seconds_count", **route) + 2
    assert value(after, "trainyard_http_requests_total", method="GET", route="unmatched", status="404") == \
        value(before, "trainyard_http_requests_total", method="GET", route="unmatched", status="404") + 1
    text = anon.get("/metrics").text
    # Counts only: no job, dataset or tenant id, nor a path as asked, in any label.
    assert job["id"] not in text and dataset["id"] not in text and "job_nothing_here" not in text
    assert "/no/such/path" not in text and "tn_" not in text
    assert 'route="/metrics"' not in text  # the scrapes themselves are not counted


def test_workers_by_state_with_heartbeat_memory_and_rate(api, anon):
    dataset = upload_npz(api, *blobs(60))
    job = queued_job(api, dataset["id"], epochs=10)
    busy, idle = f"cpu0@metrics-test:{job['id'][-6:]}", f"cpu1@metrics-test:{job['id'][-6:]}"
    before = scrape(anon)
    with session_scope() as s:
        for name in (busy, idle):
            workers.register(db_session=s, worker=Worker(
                name=name, host="metrics-test", pid=1, kind="cpu", device_name="cpu",
                memory_bytes=8 * 2**30, queue="trainyard.cpu"))
        assert lifecycle.claim(db_session=s, job_id=job["id"], worker_id=busy, lease_seconds=60) == 1
        workers.set_current_job(db_session=s, name=busy, job_id=job["id"])
        # Its latest epoch (as the runner's flush writes it): 10 epochs of 3 steps (48 rows, batch 16).
        s.execute(update(Job).where(Job.id == job["id"]).values(
            total_steps=30, latest_metrics={"epoch": 1, "train_loss": 1.0, "epoch_seconds": 0.5}))
    try:
        after = scrape(anon)
        assert value(after, "trainyard_workers", kind="cpu", state="busy") == \
            value(before, "trainyard_workers", kind="cpu", state="busy") + 1
        assert value(after, "trainyard_workers", kind="cpu", state="idle") == \
            value(before, "trainyard_workers", kind="cpu", state="idle") + 1
        assert value(after, "trainyard_worker_busy", worker=busy, kind="cpu") == 1
        assert (("trainyard_worker_busy", (("kind", "cpu"), ("worker", idle)))) in after
        assert value(after, "trainyard_worker_busy", worker=idle, kind="cpu") == 0
        assert 0 <= value(after, "trainyard_worker_heartbeat_age_seconds", worker=busy, kind="cpu") < 30
        assert value(after, "trainyard_worker_memory_bytes", worker=busy, kind="cpu", device="cpu") == 8 * 2**30
        assert value(after, "trainyard_worker_steps_per_second", worker=busy, kind="cpu") == pytest.approx(6.0)
        assert value(after, "trainyard_steps_per_second", queue="cpu") >= 6.0
        # Heard from too long ago: offline, and no longer counted busy.
        with session_scope() as s:
            s.execute(update(Worker).where(Worker.name == busy).values(heartbeat_at=utcnow() - timedelta(hours=1)))
        offline = scrape(anon)
        assert value(offline, "trainyard_workers", kind="cpu", state="offline") == \
            value(before, "trainyard_workers", kind="cpu", state="offline") + 1
        assert value(offline, "trainyard_worker_busy", worker=busy, kind="cpu") == 0
        with session_scope() as s:
            workers.stopped(db_session=s, name=busy)
        stopped = scrape(anon)
        assert ("trainyard_worker_busy", (("kind", "cpu"), ("worker", busy))) not in stopped
    finally:  # the package's other tests expect an empty registry
        with session_scope() as s:
            s.execute(delete(Worker).where(Worker.name.in_([busy, idle])))


def test_lost_leases_count_the_reapers_requeues_and_give_ups(api, anon):
    dataset = upload_npz(api, *blobs(60))
    job = queued_job(api, dataset["id"])
    before = scrape(anon)
    attempts = get_settings().max_attempts
    with session_scope() as s:  # a worker that claims, then is never heard from again
        lifecycle.claim(db_session=s, job_id=job["id"], worker_id="gone:1", lease_seconds=-1)
    with session_scope() as s:
        assert job["id"] in lifecycle.requeue_lost(db_session=s, max_attempts=attempts)
    requeued = scrape(anon)
    assert value(requeued, "trainyard_reaper_requeues_total") == value(before, "trainyard_reaper_requeues_total") + 1
    assert value(requeued, "trainyard_lost_leases_total", outcome="retried") == \
        value(before, "trainyard_lost_leases_total", outcome="retried") + 1
    with session_scope() as s:
        lifecycle.claim(db_session=s, job_id=job["id"], worker_id="gone:2", lease_seconds=-1)
    with session_scope() as s:
        assert lifecycle.give_up_lost(db_session=s, max_attempts=2) == 1
    given_up = scrape(anon)
    assert value(given_up, "trainyard_lost_leases_total", outcome="failed") == \
        value(before, "trainyard_lost_leases_total", outcome="failed") + 1
    assert value(given_up, "trainyard_reaper_requeues_total") == value(requeued, "trainyard_reaper_requeues_total")


def test_metrics_token_when_set_is_a_bearer_token(anon, monkeypatch):
    monkeypatch.setattr(get_settings(), "metrics_token", "s3cret-scrape")
    refused = anon.get("/metrics")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["errors"][0]["field"] == "Authorization"
    wrong = anon.get("/metrics", headers={"Authorization": "Bearer not-it"})
    assert wrong.status_code == 401 and "METRICS_TOKEN" in wrong.json()["detail"]
    ok = anon.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
    assert ok.status_code == 200 and "trainyard_jobs" in ok.text


def test_webhook_deliveries_and_failed_attempts_are_counted(api, anon):
    from app.models import WebhookDelivery
    from app.webhooks import deliveries

    hook = api.post("/v1/webhooks", json={"url": "https://93.184.215.14/hook", "events": ["job.cancelled"]}).json()
    before = scrape(anon)
    job = queued_job(api, upload_npz(api, *blobs(60))["id"])
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    pending = scrape(anon)
    assert value(pending, "trainyard_webhook_deliveries", status="pending") == \
        value(before, "trainyard_webhook_deliveries", status="pending") + 1
    assert value(pending, "trainyard_webhook_oldest_pending_seconds") > 0
    (delivery_id,) = [d["id"] for d in api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"]]
    for attempt, code in [(1, 500), (2, 200)]:  # as the sender claims and records two attempts
        with session_scope() as s:
            s.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(attempts=attempt))
            row = s.get(WebhookDelivery, delivery_id)
            claimed = deliveries.Claimed(row.id, row.webhook_id, "", "", row.payload, attempt, row.created_at)
            deliveries.record(db_session=s, claimed=claimed, status_code=code, error=None)
    after = scrape(anon)
    assert value(after, "trainyard_webhook_failed_attempts_total") == \
        value(before, "trainyard_webhook_failed_attempts_total") + 1
    for status, added in [("pending", 0), ("delivered", 1)]:
        assert value(after, "trainyard_webhook_deliveries", status=status) == \
            value(before, "trainyard_webhook_deliveries", status=status) + added
