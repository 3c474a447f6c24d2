"""Training speed: Trainyard's engine against the loops people write, in one run.

    python bench/train_speed.py            # full sizes, a few minutes on 2 CPU cores
    python bench/train_speed.py --smoke    # tiny sizes: proves the script still works

For each model (an MLP on tabular data, a small CNN on 8x8 images, a GRU on sequences)
it times, on the same data, seed and batches:
  engine      worker.trainer.train, with its default metrics (step loss every 10 steps)
  engine-nolog the engine logging no step points (log_every_steps larger than the run)
  raw         a minimal PyTorch loop: tensors in memory, index batches, no metrics
  idiomatic   DataLoader(TensorDataset(...), shuffle=True) and loss.item() every step
and reports each time relative to the raw loop. The engine's losses must equal the raw
loop's exactly (the same computation); the script fails otherwise.
"""
import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.ml.build import build_loss, build_model, build_optimizer  # noqa: E402
from app.ml.spec import JobSpec  # noqa: E402
from worker.trainer import Hooks, train  # noqa: E402

CPU = torch.device("cpu")


def workloads(smoke: bool) -> list[tuple[str, dict, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    n = 512 if smoke else 20_000
    tab_x = rng.normal(size=(n, 32)).astype(np.float32)
    tab_y = (tab_x[:, :4].sum(1) > 0).astype(np.int64) + (tab_x[:, 4] > 1).astype(np.int64)
    img_n = 256 if smoke else 4_000
    img_x = rng.normal(size=(img_n, 1, 8, 8)).astype(np.float32)
    img_y = (img_x[:, 0, :4].mean((1, 2)) > 0).astype(np.int64)
    seq_n = 256 if smoke else 4_000
    t = np.linspace(0, 4 * np.pi, 21, dtype=np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=(seq_n, 1)).astype(np.float32)
    waves = np.sin(t[None, :] + phase)
    seq_x, seq_y = waves[:, :20, None], waves[:, 20]
    epochs = 1 if smoke else 5
    common = {"optimizer": {"type": "adam", "lr": 1e-3},
              "training": {"epochs": epochs, "batch_size": 64, "seed": 1}}
    return [
        ("mlp", {**common, "loss": {"type": "cross_entropy"}, "model": {"layers": [
            {"type": "linear", "out_features": 64}, {"type": "relu"},
            {"type": "linear", "out_features": 64}, {"type": "relu"},
            {"type": "linear", "out_features": 3}]}}, tab_x, tab_y),
        ("cnn", {**common, "loss": {"type": "cross_entropy"}, "model": {"layers": [
            {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"},
            {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"},
            {"type": "linear", "out_features": 2}]}}, img_x, img_y),
        ("gru", {**common, "loss": {"type": "mse"}, "model": {"layers": [
            {"type": "gru", "hidden_size": 32, "output": "last"},
            {"type": "linear", "out_features": 1}]}}, seq_x, seq_y),
    ]


def raw_loop(spec: JobSpec, x: np.ndarray, y: np.ndarray) -> tuple[nn.Module, list[torch.Tensor]]:
    """What a careful user writes: data in memory, index batches, no per-step sync."""
    t = spec.training
    torch.manual_seed(t.seed)
    g = torch.Generator().manual_seed(t.seed)
    model = build_model(spec.model, x.shape[1:])
    loss_fn, opt = build_loss(spec.loss), build_optimizer(spec.optimizer, model.parameters())
    X = torch.as_tensor(x)
    Y = torch.as_tensor(y) if spec.loss.type == "cross_entropy" else torch.as_tensor(y).unsqueeze(1)
    losses = []
    for _ in range(t.epochs):
        order = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), t.batch_size):
            idx = order[i:i + t.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            losses.append(loss.detach())
    return model, losses


def idiomatic_loop(spec: JobSpec, x: np.ndarray, y: np.ndarray) -> None:
    """What most tutorials write: a DataLoader over a TensorDataset and loss.item() per step."""
    t = spec.training
    torch.manual_seed(t.seed)
    model = build_model(spec.model, x.shape[1:])
    loss_fn, opt = build_loss(spec.loss), build_optimizer(spec.optimizer, model.parameters())
    Y = torch.as_tensor(y) if spec.loss.type == "cross_entropy" else torch.as_tensor(y).unsqueeze(1)
    loader = DataLoader(TensorDataset(torch.as_tensor(x), Y), batch_size=t.batch_size, shuffle=True)
    for _ in range(t.epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            _ = loss.item()


def engine(spec: JobSpec, x, y, points: list | None = None):
    hooks = Hooks(flush=lambda p, e, s: points.extend(p) if points is not None else None)
    return train(spec, x, y, CPU, hooks)


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up: first-call costs (allocator, kernels' setup) are not training speed
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats = 1 if args.smoke else args.repeats
    torch.set_num_threads(1)  # comparable timings on a shared machine
    print(f"torch {torch.__version__}, 1 thread, best of {repeats}\n")
    print(f"{'model':6} {'raw s':>8} {'engine':>8} {'no-log':>8} {'idiomatic':>10}   losses equal")
    failed = False
    for name, body, x, y in workloads(args.smoke):
        spec = JobSpec.model_validate({"dataset": "ds_bench", **body})
        quiet = JobSpec.model_validate({"dataset": "ds_bench", **body, "training": {
            **body["training"], "log_every_steps": 10**9}})
        raw = best_of(lambda: raw_loop(spec, x, y), repeats)
        eng = best_of(lambda: engine(spec, x, y), repeats)
        nolog = best_of(lambda: engine(quiet, x, y), repeats)
        idio = best_of(lambda: idiomatic_loop(spec, x, y), repeats)
        points = []
        result = engine(quiet.model_copy(update={"training": quiet.training.model_copy(
            update={"log_every_steps": 1})}), x, y, points)
        model, losses = raw_loop(spec, x, y)
        same = [p["train_loss"] for p in points if p["kind"] == "step"] == torch.stack(losses).tolist() \
            and all(torch.equal(a, b) for a, b in zip(result.model.state_dict().values(),
                                                      model.state_dict().values()))
        failed |= not same
        print(f"{name:6} {raw:8.3f} {eng / raw:7.3f}x {nolog / raw:7.3f}x {idio / raw:9.3f}x   {same}")
    print("\nratios: time / raw loop time (lower is faster; engine target <= 1.05x)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
