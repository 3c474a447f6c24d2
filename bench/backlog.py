"""A backlog of tiny jobs: jobs per second, and the duplicate messages it caused, on both deployments.

Starts a real deployment (API + one worker, as the tests do), and C clients submit N tiny
jobs (the builtin iris, a small MLP, 1 epoch) between them, as fast as the API takes
them; the worker trains the backlog as it grows. The rate is N over the time from the
first POST to the last job's finished_at (client and worker read one clock). Every job
must succeed, once (1 attempt).

The worker's log says what each message cost: "received" counts the deliveries, "dups"
the deliveries beyond one per job (resent messages: the reaper sends a job again when it
waited RESEND_AFTER_SECONDS since its last message), and "in process" the duplicates that
reached a training process before they were recognised. "wait p50/max" is how long a job
waited between its POST and its start (started_at - created_at), "watched" the same for
one more job submitted once the backlog is trained: it waits behind whatever is still
queued (resent messages arrive after every job's first one; those are counted too, up to
its start). "ratio" is the
deployment's jobs per second over the embedded deployment's in the same run, with the
same "per process" (TRAINING_PROCESS_MAX_JOBS: 1 is a fresh training process per job,
0 one process for every job); --per-process 0,1 measures what a process per job costs.

    .venv/bin/python bench/backlog.py                                   # 200 jobs, 8 clients, both
    .venv/bin/python bench/backlog.py --jobs 300 --resend-after 60      # a backlog that outlives the resend
    .venv/bin/python bench/backlog.py --per-process 0,1                 # what a process per job costs
    .venv/bin/python bench/backlog.py --jobs 6 --clients 2 --deployments embedded
"""
import argparse
import asyncio
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import deployment, percentile  # noqa: E402
from bench.submit_latency import SPEC  # noqa: E402
from tests.stack import Stack  # noqa: E402

TERMINAL = ("succeeded", "failed", "cancelled")
# What the worker logs per delivery: Celery's own line, or (instead) the line of a duplicate
# dropped in the worker's main process (worker/duplicates.py); and per duplicate that a
# training process had to recognise (worker/runner.py).
RECEIVED = ("] received", "its message was dropped before the training process")
DUPLICATE_IN_PROCESS = "is not claimable"


async def submit(stack: Stack, key: str, jobs: int, clients: int) -> list[str]:
    """C clients POST ``jobs`` jobs between them, each its next as soon as the last is answered."""
    ids: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=stack.url, limits=limits, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        async def client(share: int) -> None:
            for _ in range(share):
                r = await http.post("/v1/jobs", json=SPEC)
                r.raise_for_status()
                ids.append(r.json()["id"])

        await asyncio.gather(*(client(jobs // clients + (i < jobs % clients)) for i in range(clients)))
    return ids


def all_jobs(api: httpx.Client) -> list[dict]:
    jobs, offset = [], 0
    while True:
        page = api.get("/v1/jobs", params={"limit": 500, "offset": offset}).json()
        jobs += page["items"]
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return jobs


def wait_all(api: httpx.Client, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sum(api.get("/v1/jobs", params={"status": s, "limit": 1}).json()["total"] for s in TERMINAL)
        if done >= count:
            return all_jobs(api)
        time.sleep(0.5)
    raise RuntimeError(f"the backlog of {count} jobs did not finish in {timeout:g} s")


def received_so_far(stack: Stack) -> int:
    return sum(stack.worker_log_count(text) for text in RECEIVED)


def stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def bench(name: str, per_process: int, args) -> dict:
    env = {"RESEND_AFTER_SECONDS": str(args.resend_after), "REAPER_INTERVAL_SECONDS": str(args.reaper_interval),
           "TRAINING_PROCESS_MAX_JOBS": str(per_process)}
    with deployment(name, env) as stack:
        key = stack.new_key(f"bench-{name}")
        with stack.client(key) as api:
            api.post("/v1/jobs", json=SPEC).raise_for_status()  # the API's first check of SPEC
            wait_all(api, 1, 120)
            received_before = received_so_far(stack)
            started = time.time()
            ids = asyncio.run(submit(stack, key, args.jobs, args.clients))
            jobs = [j for j in wait_all(api, args.jobs + 1, args.timeout) if j["id"] in set(ids)]
            # A job submitted once the backlog is trained waits behind what is still in the
            # queue: the resent messages, which arrive after every job's first one.
            watched_id = api.post("/v1/jobs", json=SPEC).json()["id"]
            watched = next(j for j in wait_all(api, args.jobs + 2, args.timeout) if j["id"] == watched_id)
        bad = [j for j in jobs if j["status"] != "succeeded" or j["attempts"] != 1]
        if bad:
            raise RuntimeError(f"{len(bad)} jobs did not succeed once, e.g. {bad[0]}\n{stack.logs()}")
        elapsed = max(stamp(j["finished_at"]) for j in jobs) - started
        waits = [stamp(j["started_at"]) - stamp(j["created_at"]) for j in jobs]
        received = received_so_far(stack) - received_before - 1  # less the watched job's
        return {"deployment": name, "per_process": per_process, "jobs": len(jobs), "clients": args.clients,
                "seconds": elapsed,
                "per_s": len(jobs) / elapsed, "wait_p50": percentile(waits, 50), "wait_max": max(waits),
                "watched": stamp(watched["started_at"]) - stamp(watched["created_at"]),
                "received": received, "dups": received - len(jobs),
                "in_process": stack.worker_log_count(DUPLICATE_IN_PROCESS)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="tiny jobs in the backlog")
    parser.add_argument("--clients", type=int, default=8, help="concurrent submitting clients")
    parser.add_argument("--resend-after", type=float, default=300,
                        help="RESEND_AFTER_SECONDS (the default setting: 300)")
    parser.add_argument("--reaper-interval", type=float, default=15,
                        help="REAPER_INTERVAL_SECONDS (the default setting: 15)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds the backlog may take")
    parser.add_argument("--per-process", default="0", type=lambda v: [int(n) for n in v.split(",")],
                        help="TRAINING_PROCESS_MAX_JOBS values to measure (0: the default, no limit)")
    parser.add_argument("--deployments", default="embedded,production")
    args = parser.parse_args()
    print(f"{'deployment':<11} {'per process':>11} {'jobs':>5} {'clients':>7} {'seconds':>8} {'jobs/s':>7} "
          f"{'ratio':>6} {'wait p50 s':>10} {'wait max s':>10} {'watched s':>9} {'received':>8} {'dups':>5} "
          f"{'in process':>10}")
    for per_process in args.per_process:
        baseline = None
        for name in args.deployments.split(","):
            r = bench(name.strip(), per_process, args)
            baseline = baseline or (r["per_s"] if r["deployment"] == "embedded" else None)
            ratio = f"{r['per_s'] / baseline:.2f}" if baseline else "-"
            print(f"{r['deployment']:<11} {r['per_process']:>11} {r['jobs']:>5} {r['clients']:>7} "
                  f"{r['seconds']:>8.1f} {r['per_s']:>7.2f} {ratio:>6} {r['wait_p50']:>10.1f} "
                  f"{r['wait_max']:>10.1f} "
                  f"{r['watched']:>9.1f} {r['received']:>8} {r['dups']:>5} {r['in_process']:>10}", flush=True)


if __name__ == "__main__":
    main()
