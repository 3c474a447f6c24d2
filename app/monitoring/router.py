"""GET /metrics in Prometheus's text format: this API process's requests (app/monitoring/requests.py,
and prometheus-client's process metrics), then the service's state from the database (service.py)."""
import hmac
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from app.config import get_settings
from app.deps import SessionDep, Unauthorized, bearer_key
from app.monitoring import service
from app.monitoring.service import Histogram, Snapshot
from app.openapi import errors

router = APIRouter(tags=["operations"])

STATES = ("busy", "idle", "draining", "offline")


class SnapshotCollector:
    """prometheus-client's custom collector of one scrape's database reads."""

    def __init__(self, snap: Snapshot, seconds: float):
        self.snap, self.seconds = snap, seconds

    def collect(self):
        s = self.snap
        jobs = GaugeMetricFamily("trainyard_jobs", "Jobs by status and by the queue (kind of worker) they use",
                                 labels=["status", "queue"])
        for (status, queue), n in sorted(s.jobs.items()):
            jobs.add_metric([status, queue], n)
        yield jobs
        wait = HistogramMetricFamily("trainyard_job_queue_wait_seconds",
                                     "Submit to first claim, of jobs that started on their first attempt",
                                     labels=["queue"])
        for queue, h in sorted(s.queue_wait.items()):
            wait.add_metric([queue], _buckets(h, service.QUEUE_WAIT_BUCKETS), h.total)
        yield wait
        run = HistogramMetricFamily("trainyard_job_run_seconds",
                                    "Claim to end of ended jobs' last attempt, by queue and outcome",
                                    labels=["queue", "status"])
        for (queue, status), h in sorted(s.run_time.items()):
            run.add_metric([queue, status], _buckets(h, service.RUN_BUCKETS), h.total)
        yield run
        rate = GaugeMetricFamily("trainyard_steps_per_second",
                                 "Training steps per second, summed over each queue's running jobs (their latest epoch)",
                                 labels=["queue"])
        for queue, value in sorted(s.steps_per_second.items()):
            rate.add_metric([queue], value)
        yield rate
        yield from self._workers()
        yield CounterMetricFamily("trainyard_reaper_requeues", "Jobs the reaper put back in the queue after "
                                  "their worker was lost (the lease expired)", value=s.requeues)
        lost = CounterMetricFamily("trainyard_lost_leases", "Leases that expired with their worker gone, "
                                   "by what the reaper did: retried, or failed (no attempts left)", labels=["outcome"])
        lost.add_metric(["retried"], s.requeues)
        lost.add_metric(["failed"], s.given_up)
        yield lost
        yield from self._webhooks()
        yield GaugeMetricFamily("trainyard_metrics_query_seconds",
                                "How long this scrape's database reads took", value=self.seconds)

    def _webhooks(self):
        hooks = self.snap.webhooks
        deliveries = GaugeMetricFamily("trainyard_webhook_deliveries", "Webhook deliveries by status: pending "
                                       "(not yet answered 2xx), delivered, failed (given up after a day)",
                                       labels=["status"])
        for status in ("pending", "delivered", "failed"):
            deliveries.add_metric([status], hooks.deliveries.get(status, 0))
        yield deliveries
        yield CounterMetricFamily("trainyard_webhook_failed_attempts", "Webhook delivery attempts that got no 2xx "
                                  "(an error status, no answer, or a refused address)", value=hooks.failed_attempts)
        yield GaugeMetricFamily("trainyard_webhook_oldest_pending_seconds", "Age of the oldest pending webhook "
                                "delivery (0: none); growing while receivers fail or no sender runs",
                                value=hooks.oldest_pending_seconds)

    def _workers(self):
        counts = GaugeMetricFamily("trainyard_workers", "Workers not stopped, by kind and state", labels=["kind", "state"])
        for kind in ("gpu", "cpu"):
            for state in STATES:
                counts.add_metric([kind, state], sum(1 for w in self.snap.workers if (w.kind, w.state) == (kind, state)))
        yield counts
        age = GaugeMetricFamily("trainyard_worker_heartbeat_age_seconds", "Seconds since the worker's last heartbeat",
                                labels=["worker", "kind"])
        busy = GaugeMetricFamily("trainyard_worker_busy", "1 while the worker trains a job, else 0",
                                 labels=["worker", "kind"])
        rate = GaugeMetricFamily("trainyard_worker_steps_per_second",
                                 "Steps per second of the worker's running job (its latest epoch); 0 when idle",
                                 labels=["worker", "kind"])
        memory = GaugeMetricFamily("trainyard_worker_memory_bytes",
                                   "The worker's device memory (a GPU's total, or the host's for a CPU worker)",
                                   labels=["worker", "kind", "device"])
        for w in self.snap.workers:
            age.add_metric([w.name, w.kind], w.heartbeat_age)
            busy.add_metric([w.name, w.kind], 1 if w.state == "busy" else 0)
            rate.add_metric([w.name, w.kind], w.steps_per_second)
            if w.memory_bytes is not None:
                memory.add_metric([w.name, w.kind, w.device], w.memory_bytes)
        yield from (age, busy, rate, memory)


def _buckets(h: Histogram, bounds: tuple) -> list[tuple[str, int]]:
    return [*((str(float(b)), n) for b, n in zip(bounds, h.buckets)), ("+Inf", h.count)]


def check_token(authorization: str | None) -> None:
    token = get_settings().metrics_token
    if token and not hmac.compare_digest(bearer_key(authorization).encode(), token.encode()):
        raise Unauthorized("the Authorization header's token is not METRICS_TOKEN")


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
          "description": "Prometheus's text exposition format"},
    **errors(401, 503, why={401: "METRICS_TOKEN is set and the request does not send it as a Bearer token"})})
def metrics(request: Request, db: SessionDep) -> Response:
    """The API's request counts and latencies, and the service's jobs, queues and workers (counts only).

    Open unless the server sets METRICS_TOKEN; then send it as 'Authorization: Bearer <token>'.
    """
    check_token(request.headers.get("authorization"))  # read as sent: no parameter, so no 422
    started = time.perf_counter()
    snap = service.snapshot(db_session=db, offline_seconds=get_settings().worker_offline_seconds)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap, time.perf_counter() - started))
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
