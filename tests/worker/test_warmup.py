"""The worker's warm-up leaves nothing for a forked training process to load (worker/warmup.py)."""
import json
import subprocess
import sys

from tests.stack import ROOT

SCRIPT = """
import json, sys
import numpy as np, torch
from worker import warmup
from worker.trainer import train
from app.ml.spec import JobSpec
warmup.run()
before = set(sys.modules)
spec = JobSpec.model_validate({"dataset": "d", "model": {"layers": [{"type": "linear", "out_features": 8},
    {"type": "relu"}, {"type": "linear", "out_features": 2}]}, "loss": {"type": "cross_entropy"},
    "optimizer": {"type": "adam", "lr": 0.01}, "training": {"epochs": 2, "batch_size": 4}})
train(spec, np.ones((12, 5), np.float32), np.zeros(12, np.int64), torch.device("cpu"))
print(json.dumps({"new": sorted(set(sys.modules) - before), "cuda": torch.cuda.is_initialized()}))
"""


def test_after_the_warm_up_a_job_loads_no_module_and_cuda_never_started():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"new": [], "cuda": False}
