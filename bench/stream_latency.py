"""Stream latency: from the worker committing a metric point to SSE clients receiving it.

Starts a real deployment (API + worker processes, as the tests do), submits one job,
connects N clients to GET /v1/jobs/{id}/events and, for every event each client receives,
takes (receive time - the event's "time", stamped in the worker's transaction just before
its commit). The main figures count events stamped after every client has received its
replay: the history a client gets on connecting is not latency, and N clients connecting
at once is a burst of its own, reported apart ("p95 burst": every event a client received
live after its own replay, the connection burst included).

    .venv/bin/python bench/stream_latency.py                       # 100 clients, both deployments
    .venv/bin/python bench/stream_latency.py --clients 3 --epochs 2 --deployments embedded

The production set needs PostgreSQL and Redis (TEST_POSTGRES_URL, TEST_REDIS_URL as in the
tests). "tail reads" is how many times the API's one shared tail of the job read the
database (from the API log): it does not grow with the number of clients.
"""
import argparse
import asyncio
import io
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import deployment, percentile  # noqa: E402
from tests.stack import Stack  # noqa: E402


async def watch(http: httpx.AsyncClient, job_id: str, connected: list, i: int, received: list) -> None:
    """One SSE client: records its replay's arrival, then (id, event time, receive time)
    per event until `end`.

    A lean parser (split on the blank line between events), so that 100 clients in this
    one process measure the server more than themselves.
    """
    async with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        response.raise_for_status()
        buffer, first = b"", True
        async for data in response.aiter_raw():
            now = time.time()
            if first:
                connected[i] = now  # its replay (at least the queued event) has arrived
                first = False
            *blocks, buffer = (buffer + data).split(b"\r\n\r\n")
            for block in blocks:
                fields = dict(line.split(b": ", 1) for line in block.split(b"\r\n")
                              if not line.startswith(b":"))
                if fields.get(b"event") == b"end":
                    return
                if b"id" in fields:
                    sent = datetime.fromisoformat(json.loads(fields[b"data"])["time"]).timestamp()
                    received.append((int(fields[b"id"]), sent, now))


def job_spec(dataset: str, epochs: int) -> dict:
    return {"dataset": dataset,
            "model": {"layers": [{"type": "linear", "out_features": 32}, {"type": "relu"},
                                 {"type": "linear", "out_features": 3}]},
            "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam", "lr": 0.001},
            "training": {"epochs": epochs, "batch_size": 1, "validation_split": 0.25,
                         "log_every_steps": 10, "seed": 0}}


def upload(api: httpx.Client, rows: int) -> str:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, rows)
    x = (rng.normal(size=(rows, 8)) + y[:, None]).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    r = api.post("/v1/datasets", files={"file": ("bench.npz", buf.getvalue())})
    r.raise_for_status()
    return r.json()["id"]


async def run_clients(stack: Stack, key: str, job_id: str, clients: int) -> tuple[list, list]:
    limits = httpx.Limits(max_connections=clients + 5, max_keepalive_connections=clients + 5)
    async with httpx.AsyncClient(base_url=stack.url, limits=limits, timeout=120,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        connected: list[float] = [0.0] * clients
        received: list[list] = [[] for _ in range(clients)]
        await asyncio.gather(*(watch(http, job_id, connected, i, received[i]) for i in range(clients)))
    return connected, received


def tail_reads(stack: Stack, job_id: str) -> str:
    """From the API log: the shared tail's database reads for the job, and its watchers."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in stack.logs().splitlines():
            if f"stream tail for {job_id} closed" in line:
                reads, watchers = line.split(": ")[-1].split(" reads shared by ")
                return f"{reads}/{watchers.split()[0]}"
        time.sleep(0.2)
    return "?"


def measure(stack: Stack, key: str, clients: int, epochs: int, rows: int) -> dict:
    with stack.client(key) as api:
        job_id = api.post("/v1/jobs", json=job_spec(upload(api, rows), epochs)).json()["id"]
    started = time.time()
    connected, received = asyncio.run(run_clients(stack, key, job_id, clients))
    all_in = max(connected)
    live = [now - sent for events in received for _, sent, now in events if sent > all_in]
    burst = [now - sent for mine, events in zip(connected, received)
             for _, sent, now in events if sent > mine]
    sequences = {tuple(i for i, _, _ in events) for events in received}
    complete = len(sequences) == 1 and list(next(iter(sequences))) == \
        list(range(1, len(next(iter(sequences))) + 1))
    return {"clients": clients, "events_per_client": len(received[0]), "samples": len(live),
            "p50_ms": 1000 * percentile(live, 50), "p95_ms": 1000 * percentile(live, 95),
            "p99_ms": 1000 * percentile(live, 99), "max_ms": 1000 * max(live, default=float("nan")),
            "p95_burst_ms": 1000 * percentile(burst, 95),
            "connect_s": all_in - started, "identical_and_complete": complete,
            "tail_reads": tail_reads(stack, job_id)}


def bench(name: str, args) -> list[dict]:
    with deployment(name, {"METRICS_FLUSH_SECONDS": str(args.flush), "MAX_EPOCHS": "10000"}) as stack:
        key = stack.new_key(f"bench-{name}")
        rounds = [1, args.clients] if args.clients > 1 else [1]
        return [{"deployment": name, **measure(stack, key, n, args.epochs, args.rows)} for n in rounds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30, help="~300 steps each")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--flush", type=float, default=0.1, help="the worker's METRICS_FLUSH_SECONDS")
    parser.add_argument("--deployments", default="embedded,production")
    args = parser.parse_args()
    print(f"{'deployment':<11} {'clients':>7} {'events':>7} {'samples':>8} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'p95 burst':>9} {'tail reads/watchers':>20}"
          f"  complete")
    for name in args.deployments.split(","):
        for r in bench(name.strip(), args):
            print(f"{r['deployment']:<11} {r['clients']:>7} {r['events_per_client']:>7} "
                  f"{r['samples']:>8} {r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} {r['p99_ms']:>7.1f} "
                  f"{r['max_ms']:>7.1f} {r['p95_burst_ms']:>9.1f} {r['tail_reads']:>20}"
                  f"  {r['identical_and_complete']}",
                  flush=True)


if __name__ == "__main__":
    main()
