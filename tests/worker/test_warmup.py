"""worker/warmup.py: the worker's main process loads a first job's lazy imports before the
pool forks, without starting a thread (a thread pool does not survive a fork)."""
import subprocess
import sys

from tests.stack import ROOT

PROBE = """
import os, sys, time
import worker.runner  # as the worker's main process does first
threads = len(os.listdir("/proc/self/task"))
from worker.warmup import warm_up
warm_up()
assert len(os.listdir("/proc/self/task")) == threads, "the warm-up started a thread"
assert "torch._dynamo" in sys.modules and "sympy" in sys.modules
import gc
assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()  # torch and the rest, frozen

import numpy as np, torch
from app.ml.spec import JobSpec
from worker.training import train
spec = JobSpec.model_validate({
    "dataset": "iris", "model": {"layers": [{"type": "linear", "out_features": 3}]},
    "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam"},
    "training": {"epochs": 2, "batch_size": 8, "seed": 0}})
x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
y = np.arange(40) % 3
pid = os.fork()
if pid == 0:  # a training process, forked after the warm-up, trains (on torch's threads)
    before = set(sys.modules)
    result = train(spec, x, y, torch.device("cpu"))
    lazily = {m for m in set(sys.modules) - before if m.startswith(("torch._dynamo", "sympy"))}
    os._exit(0 if not lazily else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_warm_up_starts_no_thread_and_a_forked_process_then_trains_without_lazy_imports():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
