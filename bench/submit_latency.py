"""Submit-to-running latency, and submissions per second the API sustains.

Starts a real deployment (API + worker processes, as the tests do) and:

1. latency: submits a tiny job (iris, a small MLP, 1 epoch) N times, one at a time, each
   to an idle, ready worker: the previous job has finished, SETTLE more seconds have
   passed, and the worker has a live training process (read from /proc). Latency is the job's started_at
   (stamped by the worker as it claims the job) minus the client's clock just before it
   sends POST /v1/jobs; both run on this machine, so they read one clock. "done" is the
   same to the job's finished_at: what a tiny job costs its user end to end. The first
   job is a warm-up and is not counted. Each deployment is measured with the same network
   every time (its pre-flight check is remembered), then with a new one each time.
2. rate: the worker is stopped (in production it runs on other machines; here it would
   train the backlog on the API's cores), then C clients POST jobs back to back for T
   seconds. Every accepted job (202) is stored and queued; they simply pile up.

    .venv/bin/python bench/submit_latency.py                              # both deployments
    .venv/bin/python bench/submit_latency.py --jobs 3 --seconds 1 --deployments embedded
"""
import argparse
import asyncio
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import deployment, percentile  # noqa: E402
from tests.stack import Stack  # noqa: E402

TERMINAL = ("succeeded", "failed", "cancelled")
SPEC = {"dataset": "iris",
        "model": {"layers": [{"type": "linear", "out_features": 16}, {"type": "relu"},
                             {"type": "linear", "out_features": 3}]},
        "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 1, "batch_size": 32, "seed": 0}}


def wait_finished(api: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            if job["status"] != "succeeded":
                raise RuntimeError(f"job {job_id} {job['status']}: {job['error']}")
            return job
        time.sleep(0.05)  # started_at is stamped by the worker, however often we look
    raise RuntimeError(f"job {job_id} did not finish in {timeout:g} s")


def training_processes(pid: int) -> set[int]:
    """The live (not zombie) descendants of the worker's main process."""
    parents, states = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue  # it just ended
        parents[int(entry.name)], states[int(entry.name)] = int(parent), state
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {p for p in found if states[p] != "Z"}


def wait_ready(stack: Stack, timeout: float = 10) -> None:
    """Waits until the worker has a live training process.

    One training process trains job after job; where it is replaced (TRAINING_PROCESS_MAX_JOBS,
    or the memory it kept), Celery may start the replacement from a timer that fires every
    5 s, not at once: a job sent before then waits for it (up to 5 s), which is not what
    this measures.
    """
    deadline = time.monotonic() + timeout
    while not training_processes(stack.workers[0].pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def spec_for(i: int, network: str) -> dict:
    """The job to submit i-th: the same network each time, or ("new") one the API has not
    checked before (another hidden width), so its pre-flight check is not remembered."""
    if network == "same":
        return SPEC
    layers = [{**SPEC["model"]["layers"][0], "out_features": 1000 + i}, *SPEC["model"]["layers"][1:]]
    return {**SPEC, "model": {"layers": layers}}


def latencies(stack: Stack, key: str, jobs: int, settle: float,
              network: str = "same") -> tuple[list[float], list[float], list[float]]:
    """(submit-to-running, POST round trip, submit-to-finished) in seconds, one each per job
    after the warm-up."""
    to_running, post, to_finished = [], [], []
    with stack.client(key) as api:
        for i in range(jobs + 1):
            time.sleep(settle)
            wait_ready(stack)
            sent = time.time()
            r = api.post("/v1/jobs", json=spec_for(i, network))
            answered = time.time()
            r.raise_for_status()
            job = wait_finished(api, r.json()["id"])
            if i:
                to_running.append(datetime.fromisoformat(job["started_at"]).timestamp() - sent)
                post.append(answered - sent)
                to_finished.append(datetime.fromisoformat(job["finished_at"]).timestamp() - sent)
    return to_running, post, to_finished


async def flood(stack: Stack, key: str, clients: int, seconds: float) -> tuple[Counter, float]:
    """Status counts of C clients POSTing jobs back to back for T seconds, and the elapsed time."""
    counts: Counter = Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=stack.url, limits=limits, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        start = time.monotonic()
        deadline = start + seconds

        async def client() -> None:
            while time.monotonic() < deadline:
                counts[(await http.post("/v1/jobs", json=SPEC)).status_code] += 1

        await asyncio.gather(*(client() for _ in range(clients)))
        return counts, time.monotonic() - start


def bench(name: str, args) -> list[dict]:
    rows = []
    with deployment(name) as stack:
        key = stack.new_key(f"bench-{name}")
        for network in args.networks:
            to_running, post, to_finished = latencies(stack, key, args.jobs, args.settle, network)
            ms = [1000 * s for s in to_running]
            rows.append({"deployment": name, "network": network, "jobs": len(ms),
                         "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "max_ms": max(ms),
                         "post_p50_ms": 1000 * percentile(post, 50),
                         "done_p50_ms": 1000 * percentile(to_finished, 50)})
        for worker in stack.workers:
            stack._stop(worker)
        counts, elapsed = asyncio.run(flood(stack, key, args.clients, args.seconds))
    for row in rows:
        row.update(clients=args.clients, per_s=counts[202] / elapsed,
                   errors=sum(counts.values()) - counts[202])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=30, help="jobs timed one at a time")
    parser.add_argument("--settle", type=float, default=0.2,
                        help="seconds between a job's end and the next submission")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for the rate")
    parser.add_argument("--seconds", type=float, default=10, help="how long the clients submit")
    parser.add_argument("--deployments", default="embedded,production")
    parser.add_argument("--networks", default="same,new", type=lambda v: v.split(","),
                        help="same: one network every time (its check is remembered); "
                             "new: a network not seen before each time")
    args = parser.parse_args()
    print(f"{'deployment':<11} {'network':<7} {'jobs':>5} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} "
          f"{'POST p50 ms':>11} {'done p50 ms':>11} {'clients':>7} {'submits/s':>9} {'errors':>6}")
    for name in args.deployments.split(","):
        for r in bench(name.strip(), args):
            print(f"{r['deployment']:<11} {r['network']:<7} {r['jobs']:>5} {r['p50_ms']:>7.1f} "
                  f"{r['p95_ms']:>7.1f} {r['max_ms']:>7.1f} {r['post_p50_ms']:>11.1f} "
                  f"{r['done_p50_ms']:>11.1f} {r['clients']:>7} {r['per_s']:>9.1f} {r['errors']:>6}",
                  flush=True)


if __name__ == "__main__":
    main()
