"""CPU workers sharing the cores: jobs per minute through 1 worker vs 2 on this machine.

Starts a real embedded deployment (API + `trainyard worker --cpu N`), submits J small jobs at
once (the 64-128-10 MLP on the builtin digits, E epochs each) and times the first POST to
the last job's finished_at. Three set-ups, each in a fresh deployment:

- `1 worker`: one CPU worker, torch's threads on every core (`--cpu 1`);
- `2 workers`: two CPU workers, the cores split between them (`--cpu 2`, worker/threads.py);
- `2 workers, unsplit`: two CPU workers each with a thread per core (`--cpu 2 --threads
  <cores>`), what `--cpu 2` did before the split.

"ratio" is jobs per minute over the first set-up's in the same run.

    .venv/bin/python bench/cpu_throughput.py                 # 8 jobs of 20 epochs
    .venv/bin/python bench/cpu_throughput.py --jobs 2 --epochs 1 --setups '1 worker,2 workers'
"""
import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.submit_latency import wait_finished  # noqa: E402
from tests.stack import Stack  # noqa: E402
from worker.threads import cores  # noqa: E402


def spec(epochs: int) -> dict:
    return {"dataset": "digits",
            "model": {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 128}, {"type": "relu"},
                                 {"type": "linear", "out_features": 10}]},
            "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam", "lr": 0.001},
            "training": {"epochs": epochs, "batch_size": 32, "seed": 0, "device": "cpu"}}


def setups() -> list[tuple[str, list[str]]]:
    return [("1 worker", ["--cpu", "1"]), ("2 workers", ["--cpu", "2"]),
            ("2 workers, unsplit", ["--cpu", "2", "--threads", str(cores())])]


def run(label: str, args: list[str], jobs: int, epochs: int) -> float:
    """Jobs per minute through the workers ``args`` start."""
    tmp = Path(tempfile.mkdtemp(prefix="ty-cpu-"))
    stack = Stack(f"cpu-{label}", tmp, {})
    try:
        stack.cli("migrate")
        stack.api = stack._spawn("api", "api", "--port", str(stack.port))
        stack.wait_ready()
        stack.start_worker(*args)
        workers = int(args[1])
        with stack.client(stack.new_key("bench")) as api:
            _wait_online(api, workers)
            api.post("/v1/jobs", json=spec(1)).raise_for_status()  # stores the builtin once
            time.sleep(0.5)
            started = time.time()
            ids = [api.post("/v1/jobs", json=spec(epochs)).json()["id"] for _ in range(jobs)]
            finished = [wait_finished(api, i, timeout=1800)["finished_at"] for i in ids]
        last = max(datetime.fromisoformat(f).timestamp() for f in finished)
        return jobs / (last - started) * 60
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_online(api: httpx.Client, workers: int) -> None:
    deadline = time.monotonic() + 60
    while api.get("/v1/workers").json()["online"]["cpu"] < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workers} CPU worker(s) did not come online")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--setups", default="all", help="comma-separated set-up names (default: all)")
    args = parser.parse_args()
    chosen = [s for s in setups() if args.setups == "all" or s[0] in args.setups.split(",")]
    print(f"{args.jobs} jobs of {args.epochs} epochs (digits, 64-128-10 MLP) on {cores()} core(s)\n")
    print(f"| {'set-up':<20} | {'jobs/min':>8} | {'ratio':>5} |")
    print(f"|{'-' * 22}|{'-' * 9}:|{'-' * 6}:|")
    base = None
    for label, worker_args in chosen:
        rate = run(label, worker_args, args.jobs, args.epochs)
        base = base or rate
        print(f"| {label:<20} | {rate:>8.1f} | {rate / base:>5.2f} |", flush=True)


if __name__ == "__main__":
    main()
