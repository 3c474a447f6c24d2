"""How long GET /metrics's database reads take with many jobs: 10,000 jobs by default, each
with its status events and metric events, on SQLite or PostgreSQL (docs/operations.md).

    python -m bench.metrics_scrape [--jobs 10000] [--database-url postgresql+psycopg://...]

Without --database-url: a fresh SQLite file. The database is migrated, filled with plain
INSERTs, then app/monitoring/service.snapshot runs --repeat times; the median is printed.
"""
import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

STATUSES = ["succeeded"] * 70 + ["failed"] * 10 + ["cancelled"] * 5 + ["queued"] * 10 + ["running"] * 3 + ["retrying"] * 2


def fill(session, jobs: int, metric_events: int) -> None:
    from sqlalchemy import insert

    from app.models import Job, JobEvent, Tenant, Worker
    from app.models.base import utcnow

    rng, now = random.Random(0), utcnow()
    session.execute(insert(Tenant), [{"id": "tn_bench", "name": "bench", "created_at": now}])
    session.execute(insert(Worker), [{"name": f"cpu{i}@bench:{i}", "host": "bench", "pid": i, "kind": "cpu",
                                      "device_name": "cpu", "memory_bytes": 2**34, "queue": "trainyard.cpu",
                                      "status": "online", "started_at": now, "heartbeat_at": now}
                                     for i in range(8)])
    rows, events = [], []
    for n in range(jobs):
        status = rng.choice(STATUSES)
        created = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        started = created + timedelta(seconds=rng.expovariate(1 / 30)) if status != "queued" else None
        ended = status in ("succeeded", "failed", "cancelled")
        job_id = f"job_{n:032d}"
        rows.append({"id": job_id, "tenant_id": "tn_bench", "status": status, "queue": rng.choice(["cpu", "gpu"]),
                     "spec": {"training": {"epochs": 10}}, "input_shape": [4], "parameter_count": 100,
                     "attempts": 1 if started else 0, "total_steps": 1000, "step": 500, "created_at": created,
                     "started_at": started, "last_event_id": 0,
                     "finished_at": started + timedelta(seconds=rng.expovariate(1 / 120)) if ended and started else None,
                     "latest_metrics": {"epoch_seconds": 0.5} if status == "running" else None})
        kinds = [("status", {"status": "queued"})]
        if started:
            kinds.append(("status", {"status": "running", "attempt": 1, "worker": "bench:1"}))
            kinds += [("epoch", {"epoch": e, "train_loss": 1.0}) for e in range(metric_events)]
        if status == "retrying":
            kinds.append(("status", {"status": "retrying", "attempt": 1, "reason": "worker bench:1 was lost"}))
        if ended:
            kinds.append(("status", {"status": status, "error": None}))
        events += [{"job_id": job_id, "seq": i + 1, "kind": k, "data": d, "created_at": now}
                   for i, (k, d) in enumerate(kinds)]
    session.execute(insert(Job), rows)
    for i in range(0, len(events), 20_000):
        session.execute(insert(JobEvent), events[i:i + 20_000])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--metric-events", type=int, default=20, help="epoch events per started job")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="metrics-scrape-"))
    os.environ["DATA_DIR"] = str(folder)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url

    try:
        run(args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args) -> None:
    from app.db import get_engine, session_scope
    from app.migrate import upgrade
    from app.monitoring.service import snapshot

    upgrade()
    with session_scope() as s:
        fill(s, args.jobs, args.metric_events)
    if get_engine().dialect.name == "postgresql":
        with get_engine().begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    times = []
    for _ in range(args.repeat):
        with session_scope() as s:
            started = time.perf_counter()
            snap = snapshot(db_session=s, offline_seconds=20)
            times.append(time.perf_counter() - started)
    print(f"{get_engine().dialect.name}: {args.jobs} jobs, {sum(snap.jobs.values())} counted; "
          f"scrape reads median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
