"""Serving a trained job: the model as the API runs it, cached, and predictions from it."""
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from safetensors.torch import load
from torch import nn

from app.errors import ApiError
from app.jobs.lifecycle import JobStatus
from app.jobs.preprocessing import module as preprocessing_module
from app.jobs.preprocessing import read as read_preprocessing
from app.ml.build import build_model
from app.ml.spec import JobSpec
from app.models import Job
from app.storage import get_store


def preprocessing(job: Job) -> nn.Module | None:
    """The input transform the job trained with, as a module; None when there is none.

    The one place for it: predict and the ONNX export both run serving_model().
    """
    return preprocessing_module(read_preprocessing(job.id))


def serving_model(job: Job) -> nn.Module:
    """The trained network rebuilt with the shared builder, weights loaded, in eval mode."""
    spec = JobSpec.model_validate(job.spec)
    model = build_model(spec.model, job.input_shape)
    model.load_state_dict(load(get_store().get(job.weights_path)))
    pre = preprocessing(job)
    if pre is not None:
        model = nn.Sequential(pre, model)
    return model.eval()


class ModelCache:
    """A small LRU of serving models by job id; a succeeded job's weights never change."""

    def __init__(self, size: int):
        self.size, self.models, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, job: Job) -> nn.Module:
        with self.lock:
            if job.id in self.models:
                self.models.move_to_end(job.id)
                return self.models[job.id]
        model = serving_model(job)  # outside the lock: loading one job must not block others
        with self.lock:
            self.models[job.id] = model
            self.models.move_to_end(job.id)
            while len(self.models) > self.size:
                self.models.popitem(last=False)
        return model


def require_trained(job: Job) -> None:
    if job.status != JobStatus.SUCCEEDED or not job.weights_path:
        raise ApiError(409, f"job is {job.status}; the model is available once it has succeeded")


def as_batch(inputs: list, input_shape: list[int], max_rows: int) -> torch.Tensor:
    """The request's inputs as a float32 batch (rows, *input_shape), or a 422 naming inputs."""
    expected = f"expected shape [n, {', '.join(map(str, input_shape))}]"
    try:
        x = np.asarray(inputs)
    except (ValueError, TypeError):  # ragged rows
        x = None
    if x is None or x.dtype.kind not in "biuf":  # strings and nulls are not numbers
        raise ApiError(422, f"inputs must be a rectangular array of numbers; {expected}", "inputs")
    x = x.astype(np.float32)
    if x.ndim == 0 or list(x.shape[1:]) != list(input_shape):
        raise ApiError(422, f"{expected}, got shape {list(x.shape)}", "inputs")
    if len(x) > max_rows:
        raise ApiError(413, f"at most {max_rows} rows per request, got {len(x)}", "inputs")
    if not np.isfinite(x).all():
        raise ApiError(422, "inputs contain NaN or Inf", "inputs")
    return torch.from_numpy(x)


def label_of(index: int, classes: list | None) -> Any:
    """Class index -> label. Integer classes name themselves (the index is the label);
    text classes (a CSV's categories) are listed in index order."""
    if classes and not all(isinstance(c, int) for c in classes) and index < len(classes):
        return classes[index]
    return index


def predict(model: nn.Module, x: torch.Tensor, loss: str, classes: list | None,
            activation: str | None = None) -> dict:
    """Outputs, plus probabilities and labels for the classification losses.

    ``activation`` is the one the network ends with before the loss (app/ml/loss_activation.py):
    outputs that are probabilities already (a softmax) or log-probabilities (a log_softmax, nll's
    input) are not put through a softmax again.
    """
    with torch.inference_mode():
        out = model(x)  # (rows, *output_shape)
    result: dict[str, Any] = {"outputs": out.tolist()}
    if loss in ("cross_entropy", "nll") and out.ndim == 2:
        if activation == "softmax":
            result["probabilities"] = out.tolist()
        elif activation == "log_softmax":
            result["probabilities"] = out.exp().tolist()
        elif loss == "cross_entropy":  # logits
            result["probabilities"] = torch.softmax(out, dim=1).tolist()
        result["labels"] = [label_of(i, classes) for i in out.argmax(dim=1).tolist()]
    elif loss == "bce_with_logits":
        result["probabilities"] = torch.sigmoid(out).tolist()
        result["labels"] = (out > 0).long().tolist()
    return result
