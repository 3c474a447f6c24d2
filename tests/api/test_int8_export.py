"""GET /v1/jobs/{id}/weights?format=onnx-int8: a trained job's fp32 ONNX export dynamically
quantized, measured against the fp32 file on the rows the job validated on, cached.

The rows and scores are recomputed here from the definitions (the worker's split is the first
randperm of a generator seeded with training.seed), not from the service's helpers."""
import httpx
import numpy as np
import onnx
import onnxruntime
import torch

from app.client import Client as TrainyardClient
from app.storage import get_store, job_folder
from tests.api.routes import ended_job
from tests.e2e.helpers import upload_npz
from worker.runner import run_job


def run(data: bytes, x: np.ndarray) -> np.ndarray:
    return onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"inputs": x})[0]


def trained(api, x, y, layers, loss, **training) -> str:
    spec = {"dataset": upload_npz(api, x, y)["id"], "model": {"layers": layers}, "loss": {"type": loss},
            "optimizer": {"type": "adam", "lr": 0.01},
            "training": {"epochs": 3, "batch_size": 32, "seed": 5, **training}}
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    run_job(r.json()["id"])  # the worker's runner, in this process
    assert api.get(f"/v1/jobs/{r.json()['id']}").json()["status"] == "succeeded"
    return r.json()["id"]


def both(api, job_id: str):
    fp32 = api.get(f"/v1/jobs/{job_id}/weights", params={"format": "onnx"})
    int8 = api.get(f"/v1/jobs/{job_id}/weights", params={"format": "onnx-int8"})
    assert fp32.status_code == 200 and int8.status_code == 200, int8.text
    return fp32, int8


def test_an_mlps_int8_export_is_smaller_close_to_fp32_and_reports_validation_accuracy(api):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 400)
    x = (rng.normal(size=(400, 64)) + np.eye(10, 64)[y] * 3).astype(np.float32)
    layers = [{"type": "linear", "out_features": 128}, {"type": "relu"}, {"type": "linear", "out_features": 10}]
    job_id = trained(api, x, y, layers, "cross_entropy", validation_split=0.25)
    fp32, int8 = both(api, job_id)
    h = int8.headers
    assert int8.headers["content-disposition"].endswith(f'{job_id}.int8.onnx"')

    # Both Linear layers (Gemm) became MatMulInteger; no weight node left float.
    ops = [n.op_type for n in onnx.load_from_string(int8.content).graph.node]
    assert ops.count("MatMulInteger") == 2 and "Gemm" not in ops
    assert (h["x-trainyard-quantized-nodes"], h["x-trainyard-float-nodes"]) == ("2", "none")
    # 64-128-10 in fp32 is ~38.9 kB (9,610 weights of 4 bytes); int8 weights make it ~12.3 kB: 0.32.
    ratio = len(int8.content) / len(fp32.content)
    assert ratio < 0.35
    assert h["x-trainyard-size-ratio"] == f"{ratio:.3f}"

    val = torch.randperm(400, generator=torch.Generator().manual_seed(5))[:100].numpy()
    a, b = run(fp32.content, x[val]), run(int8.content, x[val])
    diff = float(np.abs(a - b).max())
    assert diff < 0.05 * float(np.abs(a).max())  # int8 weights, per-batch int8 activations
    assert h["x-trainyard-int8-rows"] == "validation 100"
    assert h["x-trainyard-int8-max-abs-diff"] == f"{diff:.3e}"
    acc_fp32, acc_int8 = float((a.argmax(1) == y[val]).mean()), float((b.argmax(1) == y[val]).mean())
    assert (h["x-trainyard-accuracy-fp32"], h["x-trainyard-accuracy-int8"]) == (f"{acc_fp32:.4f}", f"{acc_int8:.4f}")
    # The same rows the worker validated on: fp32's accuracy is the job's last val_accuracy.
    last = api.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"][-1]
    assert abs(last["val_accuracy"] - acc_fp32) < 1e-6
    assert acc_int8 >= acc_fp32 - 0.05
    assert "x-trainyard-mse-fp32" not in h

    # Cached: the same file and report, stored next to the fp32 export.
    again = api.get(f"/v1/jobs/{job_id}/weights", params={"format": "onnx-int8"})
    assert again.content == int8.content
    assert {k: v for k, v in again.headers.items() if k.startswith("x-trainyard")} == \
        {k: v for k, v in h.items() if k.startswith("x-trainyard")}
    names = {k.rsplit("/", 1)[1] for k in get_store().keys(job_folder(job_id))}
    assert {"model.onnx", "model.int8.onnx", "model.int8.onnx.json"} <= names


def test_a_regression_jobs_report_gives_the_mse_change_on_its_training_rows(api):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    y = (x @ rng.normal(size=(8, 2))).astype(np.float32)
    layers = [{"type": "linear", "out_features": 32}, {"type": "tanh"}, {"type": "linear", "out_features": 2}]
    job_id = trained(api, x, y, layers, "mse")  # no validation split: the training rows
    fp32, int8 = both(api, job_id)
    h = int8.headers
    a, b = run(fp32.content, x), run(int8.content, x)
    mse_a, mse_b = (float(np.mean((o.astype(np.float64) - y) ** 2)) for o in (a, b))
    assert h["x-trainyard-int8-rows"] == "training 200"
    assert (h["x-trainyard-mse-fp32"], h["x-trainyard-mse-int8"]) == (f"{mse_a:.4e}", f"{mse_b:.4e}")
    assert h["x-trainyard-mse-change"] == f"{mse_b - mse_a:+.3e}"
    assert h["x-trainyard-int8-max-abs-diff"] == f"{float(np.abs(a - b).max()):.3e}"
    assert "x-trainyard-accuracy-fp32" not in h


class InProcess(httpx.BaseTransport):
    """The Python client's requests sent to the in-process app (the network swapped, nothing else)."""

    def __init__(self, api):
        self.api = api

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        r = self.api.request(request.method, str(request.url), headers=dict(request.headers),
                             content=request.read())
        return httpx.Response(r.status_code, headers=r.headers, content=r.content)


def test_the_client_downloads_the_int8_file_and_reads_its_report(api, tmp_path):
    x = np.random.default_rng(3).normal(size=(120, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    layers = [{"type": "linear", "out_features": 16}, {"type": "relu"}, {"type": "linear", "out_features": 2}]
    job_id = trained(api, x, y, layers, "cross_entropy", validation_split=0.2)
    client = TrainyardClient("http://api", "unused")
    client.http = httpx.Client(base_url="http://api", transport=InProcess(api))
    path = client.download_weights(job_id, tmp_path / "m.int8.onnx", format="onnx-int8")
    report = client.int8_report(job_id)
    headers = api.get(f"/v1/jobs/{job_id}/weights", params={"format": "onnx-int8"}).headers
    assert path.read_bytes() == api.get(f"/v1/jobs/{job_id}/weights", params={"format": "onnx-int8"}).content
    assert (report["rows"], report["float_nodes"], report["quantized_nodes"]) == ("validation 24", "none", 2.0)
    assert report["accuracy_int8"] == float(headers["x-trainyard-accuracy-int8"])
    # 6-16-2 has 146 weights: the quantize/dequantize nodes outweigh what int8 saves (2.4x larger).
    assert report["size_ratio"] == float(headers["x-trainyard-size-ratio"]) > 1
    assert set(report) == {"rows", "float_nodes", "quantized_nodes", "accuracy_fp32", "accuracy_int8",
                           "int8_max_abs_diff", "size_ratio"}


def test_a_job_that_has_not_succeeded_has_no_int8_export(api):
    x = np.random.default_rng(2).normal(size=(40, 4)).astype(np.float32)
    job = ended_job(api, upload_npz(api, x, (x[:, 0] > 0).astype(np.int64))["id"])
    r = api.get(f"/v1/jobs/{job['id']}/weights", params={"format": "onnx-int8"})
    assert r.status_code == 409
    assert r.json()["detail"] == f"job is {job['status']}; weights are available once it has succeeded"
    r = api.get(f"/v1/jobs/{job['id']}/weights", params={"format": "onnx-int4"})
    assert r.status_code == 422 and "onnx-int8" in r.text
