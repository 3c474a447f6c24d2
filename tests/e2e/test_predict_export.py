"""Using a trained job: POST /predict, the client's load_model, and the ONNX export."""
import numpy as np
import onnxruntime
import pytest
import torch

from app.client import Client
from tests.e2e.helpers import blobs, csv_bytes, diverging_spec, errors_for, mlp_spec, upload_npz, wait_for

NAMES = ["cat", "dog", "emu"]


@pytest.fixture
def client(stack, tenant_keys):
    with Client(stack.url, tenant_keys["alice"]) as c:
        yield c


def train(api, spec: dict) -> dict:
    job = wait_for(api, api.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "succeeded", job
    return job


def local_outputs(client: Client, job_id: str, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return client.load_model(job_id)(torch.from_numpy(x)).numpy()


def test_predict_matches_the_downloaded_model_and_names_classes(api, client):
    x, y = blobs(90)
    r = api.post("/v1/datasets", files={"file": ("pets.csv", csv_bytes(x, [NAMES[i] for i in y]))},
                 data={"target": "label"})
    assert r.status_code == 201 and r.json()["classes"] == NAMES, r.text
    job = train(api, mlp_spec(r.json()["id"], epochs=4))

    got = api.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": x[:12].tolist()})
    assert got.status_code == 200, got.text
    body = got.json()
    expected = local_outputs(client, job["id"], x[:12])
    np.testing.assert_allclose(np.array(body["outputs"]), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.array(body["probabilities"]).sum(axis=1), 1, atol=1e-5)
    assert body["labels"] == [NAMES[i] for i in expected.argmax(axis=1)]
    # Most of these separable points are labelled right after four epochs.
    assert np.mean([l == NAMES[t] for l, t in zip(body["labels"], y[:12])]) > 0.7


def test_predict_for_multi_label_and_regression_jobs(api, client):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0], axis=1).astype(np.float32)
    ds = upload_npz(api, x, y)["id"]
    layers = {"layers": [{"type": "linear", "out_features": 8}, {"type": "tanh"},
                         {"type": "linear", "out_features": 2}]}
    bce = train(api, {"dataset": ds, "model": layers, "loss": {"type": "bce_with_logits"},
                      "optimizer": {"type": "adam", "lr": 0.05}, "training": {"epochs": 3}})
    body = api.post(f"/v1/jobs/{bce['id']}/predict", json={"inputs": x[:5].tolist()}).json()
    outputs = np.array(body["outputs"])
    np.testing.assert_allclose(np.array(body["probabilities"]), 1 / (1 + np.exp(-outputs)), atol=1e-6)
    assert body["labels"] == (outputs > 0).astype(int).tolist()

    mse = train(api, {"dataset": ds, "model": layers, "loss": {"type": "mse"},
                      "optimizer": {"type": "sgd", "lr": 0.05}, "training": {"epochs": 2}})
    body = api.post(f"/v1/jobs/{mse['id']}/predict", json={"inputs": x[:3].tolist()}).json()
    assert body["probabilities"] is None and body["labels"] is None
    np.testing.assert_allclose(np.array(body["outputs"]), local_outputs(client, mse["id"], x[:3]),
                               atol=1e-6)


def test_predict_refuses_inputs_of_the_wrong_shape(api):
    x, y = blobs(40)
    ds = upload_npz(api, x, y)["id"]
    job = train(api, mlp_spec(ds, epochs=1))
    url = f"/v1/jobs/{job['id']}/predict"
    wrong = ([[1.0, 2.0, 3.0]], [1.0, 2.0, 3.0, 4.0], [[1, 2, 3, 4], [1, 2]], [["a", "b", "c", "d"]],
             [["1", "2", "3", "4"]], [[1, 2, 3, None]], [])
    for inputs in wrong:
        r = api.post(url, json={"inputs": inputs})
        assert r.status_code == 422, (inputs, r.text)
        assert "inputs" in errors_for(r), r.text
    narrow = api.post(url, json={"inputs": [[1, 2, 3]]})
    assert "expected shape [n, 4], got shape [1, 3]" in errors_for(narrow)["inputs"]
    assert api.post(url, json={"rows": [[1, 2, 3, 4]]}).status_code == 422

    failed = wait_for(api, api.post("/v1/jobs", json=diverging_spec(api)).json()["id"])
    assert failed["status"] == "failed"
    r = api.post(f"/v1/jobs/{failed['id']}/predict", json={"inputs": [[1.0, 2.0, 3.0]]})
    assert r.status_code == 409 and "failed" in r.json()["detail"]
    assert api.get(f"/v1/jobs/{failed['id']}/weights", params={"format": "onnx"}).status_code == 409


def test_onnx_export_matches_pytorch_and_is_cached(api, client):
    x, y = blobs(80)
    spec = mlp_spec(upload_npz(api, x, y)["id"], epochs=3)
    spec["model"]["layers"] = [
        {"type": "linear", "out_features": 16}, {"type": "batchnorm1d"},
        {"type": "leaky_relu", "negative_slope": 0.1}, {"type": "dropout", "p": 0.2},
        {"type": "linear", "out_features": 3}, {"type": "softmax", "dim": 1}]
    job = train(api, spec)

    r = api.get(f"/v1/jobs/{job['id']}/weights", params={"format": "onnx"})
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].endswith('.onnx"')
    assert float(r.headers["x-trainyard-max-abs-diff"]) <= 1e-5
    session = onnxruntime.InferenceSession(r.content, providers=["CPUExecutionProvider"])
    for rows in (1, 7, 33):  # the batch dimension is dynamic
        got = session.run(None, {"inputs": x[:rows]})[0]
        np.testing.assert_allclose(got, local_outputs(client, job["id"], x[:rows]), rtol=0, atol=1e-5)

    again = api.get(f"/v1/jobs/{job['id']}/weights", params={"format": "onnx"})
    assert again.content == r.content
    assert again.headers["x-trainyard-max-abs-diff"] == r.headers["x-trainyard-max-abs-diff"]
    assert api.get(f"/v1/jobs/{job['id']}/weights", params={"format": "pickle"}).status_code == 422


def test_a_standardized_job_predicts_from_raw_inputs(api, client):
    # Far from mean 0 / std 1, so a missing standardization would show in the outputs.
    x, y = blobs(80)
    x = x * 50 + 300
    spec = {**mlp_spec(upload_npz(api, x, y)["id"], epochs=3), "data": {"standardize": True}}
    created = api.post("/v1/jobs", json=spec)
    if created.status_code == 422 and "data" in errors_for(created):
        pytest.skip("this tree's job spec has no data.standardize yet")
    job = wait_for(api, created.json()["id"])
    assert job["status"] == "succeeded", job
    stats = api.get(f"/v1/jobs/{job['id']}/spec").json()["preprocessing"]["standardize"]

    body = api.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": x[:8].tolist()}).json()
    model = client.load_model(job["id"])  # Standardize, then the network
    scaled = ((x[:8].astype(np.float64) - stats["mean"]) / stats["std"]).astype(np.float32)
    with torch.inference_mode():
        by_hand = model[1](torch.from_numpy(scaled)).numpy()
    outputs = np.array(body["outputs"])
    np.testing.assert_allclose(outputs, local_outputs(client, job["id"], x[:8]), atol=1e-6)
    np.testing.assert_allclose(outputs, by_hand, atol=1e-4)

    onnx = api.get(f"/v1/jobs/{job['id']}/weights", params={"format": "onnx"})
    session = onnxruntime.InferenceSession(onnx.content, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"inputs": x[:8]})[0], outputs, atol=1e-5)
