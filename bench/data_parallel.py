"""training.devices on the CPU: what one step's collectives cost on gloo, and steps per second of a job
trained as 1 process against 2 data parallel ranks (worker/parallel.py's launcher) on this machine.

- `per-step all-reduce`: Ranks.step_sum, the one all-reduce every step makes (the global batch's loss and
  rank 0's flush decision), timed over --calls calls between 2 gloo ranks;
- `1 process` / `2 ranks`: an MLP (features-256-256-10, Adam) on random rows, --epochs epochs of batches
  of --batch, each rank with half the cores' threads (worker/threads.py rank_share).

    .venv/bin/python bench/data_parallel.py                       # 8192 rows, batches of 256, 3 epochs
    .venv/bin/python bench/data_parallel.py --rows 1024 --epochs 1 --calls 200
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from app.ml.spec import JobSpec  # noqa: E402
from worker import parallel, threads  # noqa: E402
from worker.training import Hooks, Trainer  # noqa: E402
from worker.training.distributed import Ranks  # noqa: E402


def spec(batch: int, epochs: int, devices: int) -> JobSpec:
    return JobSpec.model_validate({
        "dataset": "ds_bench", "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam", "lr": 1e-3},
        "model": {"layers": [{"type": "linear", "out_features": 256}, {"type": "relu"},
                             {"type": "linear", "out_features": 256}, {"type": "relu"},
                             {"type": "linear", "out_features": 10}]},
        "training": {"epochs": epochs, "batch_size": batch, "device": "cpu", "devices": devices,
                     "log_every_steps": 50}})


def data(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(rows, 64)).astype(np.float32), rng.integers(0, 10, rows)


def steps_per_second(job: JobSpec, rows: int, ranks: Ranks | None) -> float:
    """Steps per second of the job's epochs after its first (which pays the one-time costs: the kernels'
    first calls, the fused optimizer's set-up)."""
    trainer = Trainer(job, *data(rows), torch.device("cpu"), Hooks(flush_seconds=1.0), ranks=ranks)
    trainer.run_epoch()
    first, started = trainer.step, time.perf_counter()
    trainer.run()
    return (trainer.step - first) / (time.perf_counter() - started)


def as_rank(args) -> None:
    """One of the 2 ranks: the all-reduce's cost, then the training; rank 0 writes the figures."""
    threads.apply(threads.rank_share(0, 2))
    ranks = Ranks.join("cpu")
    loss = torch.tensor(0.5)
    ranks.step_sum(loss, False)  # the connection's first use
    started = time.perf_counter()
    for _ in range(args.calls):
        ranks.step_sum(loss, False)
    per_call = (time.perf_counter() - started) / args.calls
    rate = steps_per_second(spec(args.batch, args.epochs, 2), args.rows, ranks)
    if ranks.leader:
        Path(args.out).write_text(json.dumps({"all_reduce_us": per_call * 1e6, "steps_per_second": rate}))
    ranks.leave()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=8192)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--out")
    args = p.parse_args()
    if "RANK" in os.environ:
        return as_rank(args)
    threads.apply(threads.cores())
    one = steps_per_second(spec(args.batch, args.epochs, 1), args.rows, None)
    out = Path(tempfile.mkdtemp()) / "ranks.json"
    parallel.launch(2, "bench.data_parallel", "--rows", str(args.rows), "--batch", str(args.batch), "--epochs",
                    str(args.epochs), "--calls", str(args.calls), "--out", str(out), run_id=f"bench-{os.getpid()}")
    two = json.loads(out.read_text())
    print(f"{threads.cores()} cores, torch {torch.__version__}, {args.rows} rows, batches of {args.batch}")
    print(f"per-step all-reduce (2 gloo ranks): {two['all_reduce_us']:.0f} us")
    print(f"1 process: {one:.1f} steps/s; 2 ranks: {two['steps_per_second']:.1f} steps/s "
          f"({two['steps_per_second'] / one:.2f}x)")


if __name__ == "__main__":
    main()
