"""The input transform a job trained with, as a module the served model runs first.

The worker saves what its data options fitted as jobs/{id}/preprocessing.json
(app.ml.preprocessing.fit_preprocessing): with ``"standardize": {"mean": [...], "std": [...]}``
when the job standardized its features. Predictions, the ONNX export and the client's
load_model all put Standardize in front of the network, so they see inputs as training did.
"""
import json

import torch
from torch import nn

from app.storage import get_store


def preprocessing_file(job_id: str) -> str:
    # The key app.storage.preprocessing_key gives; spelled out so the API still starts on
    # a tree where the worker does not write the file yet.
    return f"jobs/{job_id}/preprocessing.json"


def read(job_id: str) -> dict | None:
    """The job's preprocessing.json, or None when it has none (jobs without data options)."""
    store, key = get_store(), preprocessing_file(job_id)
    return json.loads(store.get(key)) if store.exists(key) else None


class Standardize(nn.Module):
    """(x - mean) / std per feature, with the training split's statistics.

    Computed in float32; the worker computes it in float64 and rounds once, so the two
    can differ in the last bit of a feature."""

    def __init__(self, mean: list, std: list):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))  # (*features)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std  # (batch, *features)


def module(preprocessing: dict | None) -> nn.Module | None:
    """The module for a preprocessing.json; None when it changes nothing about the inputs."""
    stats = (preprocessing or {}).get("standardize")
    return Standardize(stats["mean"], stats["std"]) if stats else None
