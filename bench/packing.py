"""Packed study members vs the same members one after another, on one worker (issue 20).

Starts a real embedded deployment (API + one `trainyard worker`), then in it:

- `packed`: a study of M members (M/2 seeds x 2 Adam learning rates) of the 64-128-10 MLP on the
  builtin digits, E epochs each, `parallel` 1: one slot, so one pack of all M (app/studies/packing.py);
- `one after another`: the same M specs as M lone jobs, submitted at once: the worker trains
  them one at a time, as it did every study member before packing.

Each is timed from its first POST to its last member's finished_at, `--rounds` times each, in
turn; "ratio" is the best one-after-another time over the best of the row. The packed members' histories are checked against the lone jobs' (the
last epoch's train_loss, bit for bit on the CPU: docs/equivalence.md).

    .venv/bin/python bench/packing.py                          # 16 members of 20 epochs, on the CPU
    .venv/bin/python bench/packing.py --members 64 --device cuda   # on a GPU worker
"""
import argparse
import shutil
import statistics
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

LRS = (1e-3, 3e-3)


def spec(epochs: int, device: str) -> dict:
    return {"dataset": "digits",
            "model": {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 128}, {"type": "relu"},
                                 {"type": "linear", "out_features": 10}]},
            "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam", "lr": LRS[0]},
            "training": {"epochs": epochs, "batch_size": 32, "seed": 0, "device": device}}


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def packed(api: httpx.Client, members: int, epochs: int, device: str) -> tuple[float, dict]:
    """Seconds for the study, and its members' final train_loss by (seed, lr)."""
    body = {"base": spec(epochs, device), "seeds": list(range(members // 2)), "grid": {"optimizer.lr": list(LRS)},
            "objective": {"metric": "train_loss"}, "parallel": 1}
    started = time.time()
    study = api.post("/v1/studies", json=body)
    study.raise_for_status()
    jobs = [wait_finished(api, m["job_id"], timeout=3600) for m in study.json()["members"]]
    sizes = {j["packed_with"] for j in jobs}
    if sizes != {members}:
        raise RuntimeError(f"the members did not train as one pack of {members}: packed_with {sizes}")
    return max(_stamp(j["finished_at"]) for j in jobs) - started, _finals(api, jobs)


def one_after_another(api: httpx.Client, members: int, epochs: int, device: str) -> tuple[float, dict]:
    specs = []
    for seed in range(members // 2):
        for lr in LRS:
            s = spec(epochs, device)
            s["optimizer"]["lr"], s["training"]["seed"] = lr, seed
            specs.append(s)
    started = time.time()
    ids = [api.post("/v1/jobs", json=s).json()["id"] for s in specs]
    jobs = [wait_finished(api, i, timeout=3600) for i in ids]
    return max(_stamp(j["finished_at"]) for j in jobs) - started, _finals(api, jobs)


def _finals(api: httpx.Client, jobs: list[dict]) -> dict:
    out = {}
    for j in jobs:
        s = api.get(f"/v1/jobs/{j['id']}/spec").json()["spec"]
        out[(s["training"]["seed"], s["optimizer"]["lr"])] = j["latest_metrics"]["train_loss"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=16, help="an even number: seeds x 2 learning rates")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="each way this many times, in turn; the best counts")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ty-packing-"))
    # The server's default flush interval (tests/stack.py sets 0.2 s): a pack's members each flush.
    stack = Stack("packing", tmp, {"METRICS_FLUSH_SECONDS": "1"})
    times: dict[str, list[float]] = {"one after another": [], "packed": []}
    try:
        stack.start(worker=False)
        stack.start_worker(*(("--devices", "0") if args.device == "cuda" else ("--cpu", "1")))  # one worker
        with stack.client(stack.new_key("bench")) as api:
            api.post("/v1/jobs", json=spec(1, args.device)).raise_for_status()  # stores the builtin once
            wait_finished(api, api.get("/v1/jobs").json()["items"][0]["id"], timeout=600)
            for _ in range(args.rounds):  # in turn: a busier minute of the shared machine hits both
                seconds, pack_finals = packed(api, args.members, args.epochs, args.device)
                times["packed"].append(seconds)
                seconds, lone_finals = one_after_another(api, args.members, args.epochs, args.device)
                times["one after another"].append(seconds)
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    same = sum(pack_finals[k] == lone_finals[k] for k in lone_finals)
    print(f"{args.members} members of {args.epochs} epochs (digits, 64-128-10 MLP, Adam, batch 32) on one "
          f"{args.device} worker, {cores()} core(s), best of {args.rounds}\n")
    print(f"| {'run':<18} | {'best s':>7} | {'median s':>8} | {'ratio':>5} |")
    print(f"|{'-' * 20}|{'-' * 8}:|{'-' * 9}:|{'-' * 6}:|")
    base = min(times["one after another"])
    for label, runs in times.items():
        print(f"| {label:<18} | {min(runs):>7.2f} | {statistics.median(runs):>8.2f} | {base / min(runs):>5.2f} |")
    print(f"\nfinal train_loss equal to the lone job's: {same} of {len(lone_finals)} members")


if __name__ == "__main__":
    main()
