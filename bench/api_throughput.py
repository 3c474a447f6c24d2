"""GET /v1/jobs/{id}: requests per second and latency, next to the constant GET /healthz.

Starts a real deployment (API + worker processes, as the tests do), submits --jobs tiny
jobs and waits for them to finish, then, for each connection count C, keeps C connections busy
for D seconds (HTTP/1.1 keep-alive; each sends its next request as soon as the previous
answer is in) with GET /healthz (no database, no authentication), then D seconds with
GET /v1/jobs/{id} (authentication, the job, its attempt history), every connection reading
the same job, then D seconds with each connection reading a job of its own (row
"/v1/jobs/{id}*C"; --jobs of them, submitted and finished beforehand). Every answer must
be a 200. With C busy connections the server always has C requests in hand, so the mean
latency is C / rate: at 64 connections latency measures the rate, at 1 an idle server.

The load comes from P processes, each a plain-socket client on one event loop (no HTTP
library: a request is a fixed byte string, an answer is read by its Content-Length), so
that the client costs the shared CPU as little as it can; "client cpu" says how much of
one core it took.

    .venv/bin/python bench/api_throughput.py                                  # production
    .venv/bin/python bench/api_throughput.py --seconds 1 --connections 8 --deployments embedded
"""
import argparse
import asyncio
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import deployment, percentile  # noqa: E402
from bench.submit_latency import SPEC, wait_finished  # noqa: E402


async def connection(reader, writer, request: bytes, start: float, end: float, latencies: list,
                     errors: list) -> None:
    """Sends the request, reads the answer, again, until ``end``; keeps the latencies of
    the answers that arrived between ``start`` and ``end`` (perf_counter times)."""
    while (sent := time.perf_counter()) < end:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        done = time.perf_counter()
        if not head.startswith(b"HTTP/1.1 200 "):
            errors.append(head.split(b"\r\n", 1)[0].decode())
        elif start <= done <= end:
            latencies.append(done - sent)
    writer.close()


def client_process(port: int, requests: list[bytes], connections: int, seconds: float, warmup: float,
                   ready, results) -> None:
    """One load process: connects, waits for the others (``ready``, a barrier), then puts
    (latencies in s, errors, its CPU seconds) on ``results``."""
    try:
        import uvloop  # comes with uvicorn[standard]; the cheaper loop leaves more CPU to the server

        uvloop.install()
    except ImportError:
        pass
    latencies: list[float] = []
    errors: list[str] = []
    cpu = time.process_time()

    async def run() -> None:
        streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
        await asyncio.to_thread(ready.wait)
        start = time.perf_counter() + warmup  # answers before then are not counted
        await asyncio.gather(*(connection(r, w, requests[i % len(requests)], start, start + seconds,
                                          latencies, errors) for i, (r, w) in enumerate(streams)))

    asyncio.run(run())
    results.put((latencies, errors, time.process_time() - cpu))


def hammer(port: int, paths: list[str], key: str | None, connections: int, processes: int,
           seconds: float, warmup: float) -> dict:
    """Connection i (of all processes) sends GET paths[i % len(paths)]."""
    headers = f"Host: 127.0.0.1:{port}\r\n" + (f"Authorization: Bearer {key}\r\n" if key else "")
    requests = [f"GET {path} HTTP/1.1\r\n{headers}\r\n".encode() for path in paths]
    shares = [n for n in (connections // processes + (i < connections % processes)
                          for i in range(processes)) if n]
    firsts = [sum(shares[:i]) for i in range(len(shares))]
    context = multiprocessing.get_context("fork")  # no imports to repeat: it starts at once
    ready, results = context.Barrier(len(shares) + 1), context.Queue()
    clients = [context.Process(target=client_process,
                               args=(port, [requests[(first + i) % len(requests)] for i in range(n)],
                                     n, seconds, warmup, ready, results))
               for first, n in zip(firsts, shares)]
    for client in clients:
        client.start()
    ready.wait(timeout=60)
    answers = [results.get(timeout=seconds + warmup + 60) for _ in clients]
    for client in clients:
        client.join()
    latencies = [s for lat, _, _ in answers for s in lat]
    errors = [e for _, err, _ in answers for e in err]
    if errors:
        raise RuntimeError(f"{len(errors)} answers were not 200, e.g. {errors[0]}")
    return {"per_s": len(latencies) / seconds, "p50_ms": 1000 * percentile(latencies, 50),
            "p99_ms": 1000 * percentile(latencies, 99),
            "client_cpu": sum(c for _, _, c in answers) / (seconds + warmup)}


def bench(name: str, args) -> list[dict]:
    with deployment(name) as stack:
        key = stack.new_key(f"bench-{name}")
        with stack.client(key) as api:
            ids = [api.post("/v1/jobs", json=SPEC).json()["id"] for _ in range(args.jobs)]
            for job_id in ids:
                wait_finished(api, job_id)  # the worker is idle while we measure
        paths = [f"/v1/jobs/{job_id}" for job_id in ids]
        rows = []
        for connections in args.connections:
            load = (connections, args.processes, args.seconds, args.warmup)
            constant = hammer(stack.port, ["/healthz"], None, *load)
            rows.append({"deployment": name, "endpoint": "/healthz", "connections": connections, **constant})
            variants = [("/v1/jobs/{id}", paths[:1])]
            if connections > 1 and len(paths) > 1:
                variants.append((f"/v1/jobs/{{id}}*{min(connections, len(paths))}", paths[:connections]))
            for endpoint, read in variants:
                job = hammer(stack.port, read, key, *load)
                rows.append({"deployment": name, "endpoint": endpoint, "connections": connections, **job,
                             "ratio": job["per_s"] / constant["per_s"]})
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", default="1,64",
                        type=lambda v: [int(n) for n in v.split(",")],
                        help="connection counts to measure, e.g. 1,64 (1: the latency of an idle server)")
    parser.add_argument("--processes", type=int, default=2, help="load-generating processes")
    parser.add_argument("--seconds", type=float, default=10, help="measured time per endpoint")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of load before measuring (connections, caches, thread pool)")
    parser.add_argument("--jobs", type=int, default=64,
                        help="finished jobs to read: with C connections, a row where connection i "
                             "reads job i (a tiny job takes about a second to set up)")
    parser.add_argument("--deployments", default="production")
    args = parser.parse_args()
    print(f"{'deployment':<11} {'endpoint':<17} {'conns':>5} {'req/s':>8} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'ratio':>6} {'client cpu':>10}")
    for name in args.deployments.split(","):
        for r in bench(name.strip(), args):
            ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
            print(f"{r['deployment']:<11} {r['endpoint']:<17} {r['connections']:>5} "
                  f"{r['per_s']:>8.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {ratio:>6} "
                  f"{r['client_cpu']:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
