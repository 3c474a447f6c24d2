"""Classic networks through the HTTP API, on both deployments: CNN, LSTM, residual MLP, attention.

Each trains for a few seconds on generated data and must succeed with a falling loss.
"""
import numpy as np
import torch
from safetensors.torch import load

from app.ml.build import build_model
from app.ml.spec import JobSpec
from tests.e2e.helpers import blobs, upload_npz, wait_for


def job_spec(dataset: str, layers: list, loss: str, *, epochs: int, lr: float = 0.01) -> dict:
    return {"dataset": dataset, "model": {"layers": layers}, "loss": {"type": loss},
            "optimizer": {"type": "adam", "lr": lr},
            "training": {"epochs": epochs, "batch_size": 32, "seed": 0, "log_every_steps": 5}}


def train(api, spec: dict) -> tuple[dict, list[float]]:
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    job = wait_for(api, r.json()["id"], timeout=120)
    assert job["status"] == "succeeded", job
    epochs = api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    return job, [p["train_loss"] for p in epochs]


def bars(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x8 one-channel images of a horizontal (0) or vertical (1) bar, with noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    x = rng.normal(scale=0.3, size=(rows, 1, 8, 8)).astype(np.float32)
    where = rng.integers(1, 7, rows)
    for i in range(rows):
        if y[i] == 0:
            x[i, 0, where[i], :] += 1.0
        else:
            x[i, 0, :, where[i]] += 1.0
    return x, y.astype(np.int64)


def test_cnn_learns_bar_orientation(api):
    x, y = bars(192)
    ds = upload_npz(api, x, y)
    layers = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"type": "relu"},
              {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"},
              {"type": "linear", "out_features": 2}]
    spec = job_spec(ds["id"], layers, "cross_entropy", epochs=8)
    plan = api.post("/v1/jobs", params={"dry_run": "true"}, json=spec).json()
    assert [l["output_shape"] for l in plan["layers"]] == [[4, 8, 8], [4, 8, 8], [4, 4, 4], [64], [2]]
    _, losses = train(api, spec)
    assert losses[-1] < 0.5 * losses[0], losses


def test_lstm_predicts_the_next_value_of_a_sine(api):
    rng = np.random.default_rng(1)
    phase = rng.uniform(0, 2 * np.pi, 256)
    steps = np.arange(21) * 0.3
    wave = np.sin(phase[:, None] + steps[None, :]).astype(np.float32)
    x, y = wave[:, :20, None], wave[:, 20]  # (n, seq, 1) -> the next value
    ds = upload_npz(api, x, y)
    layers = [{"type": "lstm", "hidden_size": 16}, {"type": "linear", "out_features": 1}]
    job, losses = train(api, job_spec(ds["id"], layers, "mse", epochs=12, lr=0.02))
    assert losses[-1] < 0.2 * losses[0], losses

    # the wrapper's weights (0.rnn.weight_ih_l0, ...) load into the model rebuilt from the spec
    served = api.get(f"/v1/jobs/{job['id']}/spec").json()
    model = build_model(JobSpec.model_validate(served["spec"]).model, served["input_shape"])
    model.load_state_dict(load(api.get(f"/v1/jobs/{job['id']}/weights").content))
    with torch.no_grad():
        error = ((model(torch.as_tensor(x)).squeeze(1) - torch.as_tensor(y)) ** 2).mean().item()
    assert error < 0.2 * losses[0]  # the trained weights, not a fresh model's


def test_residual_mlp_classifies_blobs(api):
    x, y = blobs(160)
    ds = upload_npz(api, x, y)
    layers = [{"type": "linear", "out_features": 16},
              {"type": "residual", "layers": [{"type": "linear", "out_features": 16}, {"type": "relu"},
                                              {"type": "linear", "out_features": 16}]},
              {"type": "relu"},
              {"type": "residual", "layers": [{"type": "linear", "out_features": 8}]},  # projected
              {"type": "linear", "out_features": 3}]
    spec = job_spec(ds["id"], layers, "cross_entropy", epochs=8)
    job, losses = train(api, spec)
    assert losses[-1] < 0.5 * losses[0], losses
    weights = load(api.get(f"/v1/jobs/{job['id']}/weights").content)
    assert {"1.block.0.weight", "3.shortcut.weight"} <= set(weights)
    assert "1.shortcut.weight" not in weights  # shapes match: identity shortcut


def test_attention_learns_a_sequence_average(api):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(256, 8, 4)).astype(np.float32)
    y = x[:, :, 0].mean(axis=1, keepdims=True).astype(np.float32)  # needs every step
    ds = upload_npz(api, x, y)
    layers = [{"type": "linear", "out_features": 16}, {"type": "attention", "num_heads": 4},
              {"type": "layernorm"}, {"type": "flatten"}, {"type": "linear", "out_features": 1}]
    _, losses = train(api, job_spec(ds["id"], layers, "mse", epochs=12))
    assert losses[-1] < 0.5 * losses[0], losses


def test_embedding_token_out_of_range_fails_the_job_with_a_clear_reason(api):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 10, (64, 5)).astype(np.float32)  # token ids 0..9, stored as floats
    y = rng.integers(0, 2, 64)
    ds = upload_npz(api, x, y)
    layers = [{"type": "embedding", "num_embeddings": 5, "embedding_dim": 4}, {"type": "flatten"},
              {"type": "linear", "out_features": 2}]
    r = api.post("/v1/jobs", json=job_spec(ds["id"], layers, "cross_entropy", epochs=1))
    assert r.status_code == 202, r.text  # the pre-flight cannot see the token ids
    job = wait_for(api, r.json()["id"])
    assert job["status"] == "failed"
    assert "num_embeddings=5 allows only 0..4" in job["error"], job["error"]
