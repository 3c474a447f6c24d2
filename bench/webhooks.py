"""Webhooks: what the outbox adds to a job's finish, and how fast the sender drains deliveries to a
real receiver on 127.0.0.1, alone and beside a receiver that takes --slow-seconds per answer
(docs/webhooks.md has the figures).

    python -m bench.webhooks [--jobs 300] [--webhooks 10] [--database-url postgresql+psycopg://...]

Without --database-url: a fresh SQLite file. Jobs are claimed and finished through the life cycle,
as a worker ends them; the sender is app/webhooks/sender.Sender, as each worker runs it.
"""
import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def serve(slow_seconds: float) -> ThreadingHTTPServer:
    """A receiver answering 200 at once, and at /slow after ``slow_seconds``."""
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path == "/slow":
                time.sleep(slow_seconds)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def finish_jobs(count: int) -> list[float]:
    """Claims and finishes ``count`` new jobs; each finish's seconds (its transaction: UPDATE, events, outbox)."""
    from app.db import session_scope
    from app.jobs import lifecycle
    from app.models import Job
    from app.models.base import new_id

    times = []
    for _ in range(count):
        with session_scope() as s:
            job = Job(id=new_id("job"), tenant_id="tn_bench", spec={}, input_shape=[4], parameter_count=1)
            lifecycle.create(db_session=s, job=job)
        with session_scope() as s:
            lifecycle.claim(db_session=s, job_id=job.id, worker_id="bench", lease_seconds=60)
        started = time.perf_counter()
        with session_scope() as s:
            lifecycle.finish(db_session=s, job_id=job.id, worker_id="bench", status=lifecycle.JobStatus.SUCCEEDED)
        times.append(time.perf_counter() - started)
    return times


def add_webhooks(urls: list[str]) -> None:
    from app.db import session_scope
    from app.models import Webhook
    from app.models.base import new_id
    from app.webhooks.signing import generate_secret

    with session_scope() as s:
        s.add_all([Webhook(id=new_id("wh"), tenant_id="tn_bench", url=url, events=["job.succeeded"],
                           secret=generate_secret()) for url in urls])


def drain(sender, quick_ids: set[str]) -> float:
    """Seconds until every delivery of ``quick_ids``' webhooks is delivered."""
    from sqlalchemy import func, select

    from app.db import session_scope
    from app.models import WebhookDelivery

    started = time.perf_counter()
    while True:
        sender.poll()
        with session_scope() as s:
            left = s.scalar(select(func.count()).select_from(WebhookDelivery).where(
                WebhookDelivery.webhook_id.in_(quick_ids), WebhookDelivery.status != "delivered"))
        if not left:
            return time.perf_counter() - started
        sender.wait(0.05)


def run(args) -> None:
    from sqlalchemy import select

    from app.db import get_engine, session_scope
    from app.migrate import upgrade
    from app.models import Tenant, Webhook
    from app.webhooks.sender import Sender

    upgrade()
    with session_scope() as s:
        s.add(Tenant(id="tn_bench", name="bench"))
    bare = statistics.median(finish_jobs(args.jobs))
    server = serve(args.slow_seconds)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    add_webhooks([f"{base}/quick{i}" for i in range(args.webhooks)])
    hooked = statistics.median(finish_jobs(args.jobs))
    with session_scope() as s:
        quick = set(s.scalars(select(Webhook.id)))
    sender = Sender()
    alone = drain(sender, quick)
    n = args.jobs * args.webhooks
    add_webhooks([f"{base}/slow"])
    finish_jobs(args.jobs)
    beside = drain(sender, quick)
    sender.stop()
    server.shutdown()
    print(f"{get_engine().dialect.name}: finish median {bare * 1000:.2f} ms without webhooks, "
          f"{hooked * 1000:.2f} ms with {args.webhooks} subscribed")
    print(f"sender ({sender.threads} threads): {n} deliveries in {alone:.2f} s ({n / alone:.0f}/s); "
          f"beside a {args.slow_seconds:g} s receiver: {n} in {beside:.2f} s ({n / beside:.0f}/s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--webhooks", type=int, default=10)
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="webhooks-bench-"))
    os.environ.update({"DATA_DIR": str(folder), "WEBHOOK_ALLOW_PRIVATE": "1", "DATABASE_URL": args.database_url})
    try:
        run(args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
