"""ONNX export of a trained job, checked against PyTorch before it is served, then cached."""
import io
import json
import warnings
from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from app.errors import ApiError
from app.storage import ArtifactStore

OPSET = 17
# Batch sizes the check runs: 1 and a larger one prove the batch dimension is dynamic.
CHECK_BATCHES = (1, 16)
# Refuse to serve a file further than this from PyTorch (relative to the output scale).
TOLERANCE = 1e-4


def onnx_key(job_id: str) -> str:
    return f"jobs/{job_id}/model.onnx"


def check_key(job_id: str) -> str:
    return f"jobs/{job_id}/model.onnx.json"


def export(model: nn.Module, example: np.ndarray) -> bytes:
    """The model as ONNX with a dynamic batch dimension.

    The TorchScript exporter (dynamo=False): the torch.export-based default needs
    onnxscript, and for these feed-forward networks both produce the same graph.
    """
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation notice, on every export
        torch.onnx.export(model, (torch.from_numpy(example),), buf, dynamo=False, opset_version=OPSET,
                          input_names=["inputs"], output_names=["outputs"],
                          dynamic_axes={"inputs": {0: "batch"}, "outputs": {0: "batch"}})
    data = buf.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def check_batches(sample: np.ndarray | None, input_shape: list[int]) -> list[np.ndarray]:
    """Rows of the job's own dataset when it still exists (token ids for an embedding stay
    valid ids), else seeded standard-normal rows."""
    if sample is None or len(sample) == 0:
        sample = np.random.default_rng(0).standard_normal((max(CHECK_BATCHES), *input_shape))
    sample = np.asarray(sample, dtype=np.float32)
    return [sample[:rows] for rows in CHECK_BATCHES]


def max_abs_diff(data: bytes, model: nn.Module, batches: list[np.ndarray]) -> tuple[float, float]:
    """Runs the batches through onnxruntime and PyTorch.

    Returns (max abs difference, largest output magnitude)."""
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst, scale = 0.0, 0.0
    for x in batches:
        with torch.inference_mode():
            expected = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {"inputs": x})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
        scale = max(scale, float(np.abs(expected).max()))
    return worst, scale


def cached_or_export(store: ArtifactStore, job_id: str, load_model: Callable[[], nn.Module],
                     input_shape: list[int], sample: np.ndarray | None) -> tuple[str, float]:
    """The stored, checked .onnx file's key and its max abs difference from PyTorch."""
    if store.exists(check_key(job_id)):  # written last, so the .onnx is there too
        return onnx_key(job_id), json.loads(store.get(check_key(job_id)))["max_abs_diff"]
    model, batches = load_model(), check_batches(sample, input_shape)
    try:
        data = export(model, batches[-1])
    except Exception as exc:  # a layer the exporter has no ONNX operator for, say
        raise ApiError(422, f"this job's model cannot be exported to ONNX: {type(exc).__name__}: "
                            f"{str(exc)[:300]}", "format")
    diff, scale = max_abs_diff(data, model, batches)
    if not diff <= TOLERANCE * max(1.0, scale):
        raise ApiError(500, f"the ONNX export differs from PyTorch by up to {diff:.3g}; "
                            "it is not served")
    store.put(onnx_key(job_id), data)
    store.put(check_key(job_id), json.dumps({"max_abs_diff": diff, "opset": OPSET}).encode())
    return onnx_key(job_id), diff
