"""The training loop and its parts; a reader starts at loop.py (Trainer.run_epoch).

What the worker's runner needs is importable from here.
"""
from worker.training import checkpoint, precision
from worker.training.data import job_preprocessing
from worker.training.divergence import Diverged
from worker.training.loop import Hooks, Stopped, Trainer, TrainResult, resolve_device, train

__all__ = ["Diverged", "Hooks", "Stopped", "TrainResult", "Trainer", "checkpoint", "job_preprocessing",
           "precision", "resolve_device", "train"]
