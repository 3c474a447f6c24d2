"""Runs a tiny job on the CPU in the worker's main process, before the pool forks.

The first model a process builds costs about a second (torch loads modules lazily, sympy
among them); every training process forked afterwards inherits them loaded, so a small
job starts training at once instead of paying that second itself. Nothing here touches
CUDA, which must not start before a fork.
"""
import numpy as np
import torch

from app.ml.spec import JobSpec
from worker.trainer import train

SPEC = {"dataset": "warmup", "model": {"layers": [{"type": "linear", "out_features": 3}]},
        "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam", "lr": 0.1},
        "training": {"epochs": 1, "batch_size": 8, "device": "cpu"}}


def run() -> None:
    x = np.zeros((16, 4), dtype=np.float32)
    y = np.zeros(16, dtype=np.int64)
    train(JobSpec.model_validate(SPEC), x, y, torch.device("cpu"))
