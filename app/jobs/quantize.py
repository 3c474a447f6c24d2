"""int8 ONNX export: onnxruntime's dynamic quantization of the checked fp32 export, measured
against that fp32 file on the job's own rows, then cached with what was measured.

Dynamic quantization stores the weights of MatMul/Gemm (as MatMul), Conv, LSTM, Attention and
Gather nodes as int8 and quantizes their inputs per batch at run time. Other weight-bearing nodes
(GRU and RNN, say) stay float; the report counts both, so a user sees what the file really is.
"""
import json
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import quantize_dynamic

from app.errors import ApiError
from app.storage import ArtifactStore

# Rows measured: the first ones of the validation (or training) rows; enough for an accuracy to
# 0.01%, few enough that the first download of a large job stays seconds.
MAX_ROWS = 10_000
# Rows per onnxruntime call: bounds the memory of one run.
CHUNK = 4096
# What quantize_dynamic turns a node into (onnxruntime's integer and com.microsoft ops).
INT8_OPS = frozenset({"MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul",
                      "QAttention", "QGemm", "QEmbedLayerNormalization"})
# Nodes that carry weights; those still in the int8 graph were left float.
WEIGHT_OPS = frozenset({"Gemm", "MatMul", "Conv", "ConvTranspose", "LSTM", "GRU", "RNN", "Attention"})
# Losses whose outputs are classes: accuracy as the worker's val_accuracy counts it.
LABEL_LOSSES = ("cross_entropy", "nll")
CLASSIFICATION = (*LABEL_LOSSES, "bce_with_logits")


@dataclass
class Rows:
    """The rows the two files are compared on: ``kind`` is validation, training or random (the
    job's dataset was deleted: seeded normal rows, no targets)."""

    kind: str
    x: np.ndarray
    y: np.ndarray | None


def int8_key(job_id: str) -> str:
    return f"jobs/{job_id}/model.int8.onnx"


def report_key(job_id: str) -> str:
    return f"jobs/{job_id}/model.int8.onnx.json"


def quantize(fp32: bytes) -> bytes:
    """The fp32 model with int8 weights (quantize_dynamic's defaults: signed int8 per tensor)."""
    with tempfile.TemporaryDirectory() as tmp:  # quantize_dynamic writes a file, not bytes
        out = Path(tmp, "int8.onnx")
        quantize_dynamic(onnx.load_from_string(fp32), out)
        data = out.read_bytes()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def outputs(data: bytes, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"inputs": x[i:i + CHUNK]})[0] for i in range(0, len(x), CHUNK)])


def node_counts(data: bytes) -> tuple[int, dict[str, int]]:
    """(quantized nodes, weight-bearing nodes left float by op type)."""
    ops = Counter(n.op_type for n in onnx.load_from_string(data).graph.node)
    return sum(ops[op] for op in INT8_OPS), {op: ops[op] for op in sorted(WEIGHT_OPS) if ops[op]}


def accuracy(out: np.ndarray, y: np.ndarray, loss_type: str) -> float:
    """As worker/training/diagnostics.evaluate counts val_accuracy: the argmax against the label
    (or the argmax of a probability row); for bce_with_logits, logit > 0 against target > 0.5,
    averaged over the columns."""
    if loss_type in LABEL_LOSSES:
        classes = y.argmax(axis=1) if y.ndim == 2 else y
        return float((out.argmax(axis=1) == classes).mean())
    return float(((out > 0) == (y.reshape(out.shape) > 0.5)).mean())


def mse(out: np.ndarray, y: np.ndarray) -> float | None:
    """Mean squared error against the targets; None when they do not line up with the outputs."""
    if y.size != out.size:
        return None
    return float(np.mean((out.astype(np.float64) - y.reshape(out.shape).astype(np.float64)) ** 2))


def measure(fp32: bytes, int8: bytes, rows: Rows, loss_type: str) -> dict:
    """What the int8 file costs against the fp32 one on ``rows``."""
    x = np.asarray(rows.x, dtype=np.float32)
    a, b = outputs(fp32, x), outputs(int8, x)
    quantized, left = node_counts(int8)
    report = {"rows": rows.kind, "row_count": len(x), "max_abs_diff": float(np.abs(a - b).max()),
              "size_ratio": len(int8) / len(fp32), "fp32_bytes": len(fp32), "int8_bytes": len(int8),
              "quantized_nodes": quantized, "float_nodes": left}
    if rows.y is None:
        return report
    if loss_type in CLASSIFICATION:
        report["accuracy_fp32"], report["accuracy_int8"] = accuracy(a, rows.y, loss_type), accuracy(b, rows.y, loss_type)
    elif (before := mse(a, rows.y)) is not None:
        report["mse_fp32"], report["mse_int8"] = before, mse(b, rows.y)
    return report


def headers(report: dict) -> dict[str, str]:
    """The response headers of a report; docs/onnx.md lists them."""
    out = {"X-Trainyard-Int8-Rows": f"{report['rows']} {report['row_count']}",
           "X-Trainyard-Int8-Max-Abs-Diff": f"{report['max_abs_diff']:.3e}",
           "X-Trainyard-Size-Ratio": f"{report['size_ratio']:.3f}",
           "X-Trainyard-Quantized-Nodes": str(report["quantized_nodes"]),
           "X-Trainyard-Float-Nodes": ", ".join(f"{op} {n}" for op, n in report["float_nodes"].items()) or "none"}
    if "accuracy_fp32" in report:
        out["X-Trainyard-Accuracy-Fp32"] = f"{report['accuracy_fp32']:.4f}"
        out["X-Trainyard-Accuracy-Int8"] = f"{report['accuracy_int8']:.4f}"
    if "mse_fp32" in report:
        out["X-Trainyard-Mse-Fp32"] = f"{report['mse_fp32']:.4e}"
        out["X-Trainyard-Mse-Int8"] = f"{report['mse_int8']:.4e}"
        out["X-Trainyard-Mse-Change"] = f"{report['mse_int8'] - report['mse_fp32']:+.3e}"
    return out


def cached_or_quantize(store: ArtifactStore, job_id: str, fp32_key: str, rows: Callable[[], Rows],
                       loss_type: str) -> tuple[str, dict]:
    """The stored int8 file's key and its report, quantizing the stored fp32 export the first time."""
    if store.exists(report_key(job_id)):  # written last, so the .onnx is there too
        return int8_key(job_id), json.loads(store.get(report_key(job_id)))
    fp32 = store.get(fp32_key)
    try:
        int8 = quantize(fp32)
    except Exception as exc:  # a graph quantize_dynamic cannot rewrite
        raise ApiError(422, f"this job's model cannot be quantized to int8: {type(exc).__name__}: "
                            f"{str(exc)[:300]}", "format")
    report = measure(fp32, int8, rows(), loss_type)
    store.put(int8_key(job_id), int8)
    store.put(report_key(job_id), json.dumps(report).encode())
    return int8_key(job_id), report
