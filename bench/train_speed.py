"""Training speed: Trainyard's engine against the loops people write, in one run.

    python bench/train_speed.py                  # full sizes, a few minutes on 2 CPU cores
    python bench/train_speed.py --device cuda    # the same on a GPU, plus bf16 vs fp32
    python bench/train_speed.py --smoke          # tiny sizes: proves the script still works

For each model (two MLPs on tabular data, a small CNN on 8x8 images, a GRU on
sequences) it times training only, from the seed to the trained model, on the same
data, seed and batch size:
  engine      worker.training.train with its default metrics (a step point every 10 steps)
  raw         a minimal loop computing the same thing (bench/_loops.py); the engine's
              losses and weights must equal its own exactly on the CPU, or the script fails
  idiomatic   DataLoader(TensorDataset(...), shuffle=True), loss.item() every step
  lightning   PyTorch Lightning's Trainer.fit on the same nn.Module
  log-every   the engine with a step point every step, against none at all
  ordinary    the engine with DIRECT_KERNELS off (worker/training/direct.py unused): what
              the direct kernel calls gain; its losses and weights must equal raw's too
Every variant runs once per round, the rounds after a warm-up one counted. A time is a
variant's best round; a ratio is the median over rounds of the two variants' ratio in the
same round, which cancels most of what other processes sharing the machine do.
"""
import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.ml.spec import JobSpec  # noqa: E402
from bench._loops import idiomatic_loop, lightning_fit, quiet_lightning, raw_loop  # noqa: E402
from worker.training import Hooks, train  # noqa: E402

NEVER = 10**9  # log_every_steps past the run's last step: no step points


def workloads(smoke: bool) -> list[tuple[str, dict, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    n = 512 if smoke else 20_000
    tab_x = rng.normal(size=(n, 32)).astype(np.float32)
    tab_y = (tab_x[:, :4].sum(1) > 0).astype(np.int64) + (tab_x[:, 4] > 1).astype(np.int64)
    small_n = 512 if smoke else 5_000
    small_x = rng.normal(size=(small_n, 20)).astype(np.float32)
    small_y = (small_x[:, :3].sum(1) > 0).astype(np.int64)
    img_n = 256 if smoke else 4_000
    img_x = rng.normal(size=(img_n, 1, 8, 8)).astype(np.float32)
    img_y = (img_x[:, 0, :4].mean((1, 2)) > 0).astype(np.int64)
    seq_n = 256 if smoke else 4_000
    t = np.linspace(0, 4 * np.pi, 21, dtype=np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=(seq_n, 1)).astype(np.float32)
    waves = np.sin(t[None, :] + phase)
    # Contiguous, as an uploaded dataset is: every loop then starts from the same layout.
    seq_x, seq_y = np.ascontiguousarray(waves[:, :20, None]), np.ascontiguousarray(waves[:, 20])
    common = {"optimizer": {"type": "adam", "lr": 1e-3},
              "training": {"epochs": 1 if smoke else 5, "batch_size": 64, "seed": 1}}
    return [
        ("mlp", {**common, "loss": {"type": "cross_entropy"}, "model": {"layers": [
            {"type": "linear", "out_features": 64}, {"type": "relu"},
            {"type": "linear", "out_features": 64}, {"type": "relu"},
            {"type": "linear", "out_features": 3}]}}, tab_x, tab_y),
        ("mlp-small", {**common, "training": {**common["training"], "batch_size": 32},
                       "loss": {"type": "cross_entropy"}, "model": {"layers": [
                           {"type": "linear", "out_features": 32}, {"type": "relu"},
                           {"type": "linear", "out_features": 2}]}}, small_x, small_y),
        ("cnn", {**common, "loss": {"type": "cross_entropy"}, "model": {"layers": [
            {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"},
            {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"},
            {"type": "linear", "out_features": 2}]}}, img_x, img_y),
        ("gru", {**common, "loss": {"type": "mse"}, "model": {"layers": [
            {"type": "gru", "hidden_size": 32, "output": "last"},
            {"type": "linear", "out_features": 1}]}}, seq_x, seq_y),
    ]


def job(body: dict, device: torch.device, **training) -> JobSpec:
    return JobSpec.model_validate({"dataset": "ds_bench", **body, "training": {
        **body["training"], "device": device.type, **training}})


def engine(spec: JobSpec, x, y, device: torch.device, points: list | None = None, direct: bool = True):
    hooks = Hooks(flush=lambda p, e, s: points.extend(p) if points is not None else None)
    return train(spec, x, y, device, hooks, direct=direct)


def round_times(variants: dict, rounds: int, clock, sync) -> dict[str, list[float]]:
    """Each variant's time in each of ``rounds`` interleaved rounds, after one warm-up round
    (first-call costs, such as allocator growth and Lightning's set-up, are not training speed).
    Each round starts one variant later, so no variant always runs right after the same one
    (after Lightning's run, say, with its garbage still to collect)."""
    names = list(variants)
    times = {name: [] for name in names}
    for r in range(rounds + 1):
        for name in names[r % len(names):] + names[:r % len(names)]:
            gc.collect()  # the previous run's garbage is not this run's cost
            sync()
            start = clock()
            variants[name]()
            sync()
            if r:
                times[name].append(clock() - start)
    return times


def ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """The median over rounds of a's time over b's in the same round. Runs of one round are
    seconds apart, so their ratio cancels most of what other processes on the machine do to
    both; the median drops the rounds where a burst hit only one of them."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def identical(body, x, y, device, direct: bool = True) -> bool:
    """The engine's every step loss and final weight equal the raw loop's."""
    points = []
    result = engine(job(body, device, log_every_steps=1), x, y, device, points, direct)
    model, losses = raw_loop(job(body, device), x, y, device)
    steps = [p["train_loss"] for p in points if p["kind"] == "step"]
    return steps == torch.stack(losses).tolist() and all(
        torch.equal(a, b.cpu()) for a, b in zip(result.model.state_dict().values(),
                                                 model.state_dict().values()))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--wall", action="store_true",
                        help="wall-clock time on the CPU too (default there: the process's CPU time)")
    args = parser.parse_args()
    device = torch.device(args.device)
    rounds = 1 if args.smoke else args.rounds
    torch.set_num_threads(1)  # comparable timings on a shared machine
    quiet_lightning()
    # With one torch thread and no DataLoader workers every loop runs on this process's one
    # thread, so its CPU time is what it would take on an idle core: other processes sharing
    # the machine do not count. A GPU works asynchronously: there only wall time means anything.
    use_wall = args.wall or device.type == "cuda"
    clock = time.perf_counter if use_wall else time.process_time
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__} on {name}, 1 thread, {'wall' if use_wall else 'CPU'} time, "
          f"{rounds} round(s) after a warm-up")

    rows, failed = [], False
    for model, body, x, y in workloads(args.smoke):
        spec = job(body, device)
        variants = {
            "raw": lambda: raw_loop(spec, x, y, device),
            "engine": lambda: engine(spec, x, y, device),
            "idiomatic": lambda: idiomatic_loop(spec, x, y, device),
            "lightning": lambda: lightning_fit(spec, x, y, device),
            "log-every": lambda: engine(job(body, device, log_every_steps=1), x, y, device),
            "log-never": lambda: engine(job(body, device, log_every_steps=NEVER), x, y, device),
            "ordinary": lambda: engine(spec, x, y, device, direct=False),
        }
        if device.type == "cuda" and model == "cnn":
            variants["bf16"] = lambda: engine(job(body, device, log_every_steps=NEVER, precision="bf16"),
                                              x, y, device)
        times = round_times(variants, rounds, clock, sync)
        same = identical(body, x, y, device)
        same_ordinary = identical(body, x, y, device, direct=False)
        # docs/equivalence.md: GPUs may differ in last bits
        failed |= device.type == "cpu" and not (same and same_ordinary)
        rows.append((model, times, same, same_ordinary))
        if threads_changed():
            return 1

    print("\n1. engine vs a minimal raw loop (same spec, seed, batches)   target: engine/raw <= 1.05")
    print(f"{'model':10} {'raw s':>8} {'engine/raw':>11}  identical")
    for model, t, same, _ in rows:
        print(f"{model:10} {min(t['raw']):8.3f} {ratio(t, 'engine', 'raw'):10.3f}x  {same}")
    target = ">= 10x for tiny models" if device.type == "cuda" else ">= 2x on small tabular models"
    print(f"\n2. the loops users write vs the engine                      target: {target}")
    print(f"{'model':10} {'engine s':>8} {'idiomatic/engine':>17} {'lightning/engine':>17}")
    for model, t, *_ in rows:
        print(f"{model:10} {min(t['engine']):8.3f} {ratio(t, 'idiomatic', 'engine'):16.2f}x "
              f"{ratio(t, 'lightning', 'engine'):16.2f}x")
    print("\n3. a step point every step vs none                           target: overhead <= 3%")
    print(f"{'model':10} {'none s':>8} {'every/none':>11}")
    for model, t, *_ in rows:
        print(f"{model:10} {min(t['log-never']):8.3f} {ratio(t, 'log-every', 'log-never'):10.3f}x")
    print("\n4. the ordinary calls vs the direct kernel calls (DIRECT_KERNELS off / on)   gain: ordinary/direct")
    print(f"{'model':10} {'direct s':>8} {'ordinary s':>10} {'ordinary/direct':>16}  identical")
    for model, t, _, same_ordinary in rows:
        print(f"{model:10} {min(t['engine']):8.3f} {min(t['ordinary']):10.3f} "
              f"{ratio(t, 'ordinary', 'engine'):15.3f}x  {same_ordinary}")
    for model, t, *_ in rows:
        if "bf16" in t:
            print("\n5. bf16 vs fp32 on the GPU, engine, no step points")
            print(f"{'model':10} {'fp32 s':>8} {'bf16 s':>8} {'fp32/bf16':>10}")
            print(f"{model:10} {min(t['log-never']):8.3f} {min(t['bf16']):8.3f} "
                  f"{ratio(t, 'log-never', 'bf16'):9.2f}x")
    print("\ntimes: each variant's best round; ratios: the median of the ratios within a round")
    return 1 if failed else 0


def threads_changed() -> bool:
    """True (and a message) if a loop changed torch's thread count, which would skew the rest."""
    if torch.get_num_threads() != 1:
        print(f"a loop changed torch's threads to {torch.get_num_threads()}", file=sys.stderr)
        return True
    return False


if __name__ == "__main__":
    sys.exit(main())
