"""The issue's reference networks on built-in datasets, through the HTTP API."""
from tests.e2e.helpers import wait_for


def _train(api, spec: dict) -> list[dict]:
    job = wait_for(api, api.post("/v1/jobs", json=spec).json()["id"], timeout=180)
    assert job["status"] == "succeeded", job
    return api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]


def test_cnn_on_digits(api):
    epochs = _train(api, {
        "dataset": "digits", "data": {"standardize": True},
        "model": {"layers": [
            {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"},
            {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"},
            {"type": "linear", "out_features": 10}]},
        "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 3, "batch_size": 64, "validation_split": 0.2}})
    assert epochs[-1]["val_accuracy"] > 0.85


def test_lstm_on_sine_sequence(api):
    epochs = _train(api, {
        "dataset": {"name": "sine_sequence", "n_samples": 300},
        "model": {"layers": [{"type": "lstm", "hidden_size": 16, "output": "last"},
                             {"type": "linear", "out_features": 1}]},
        "loss": {"type": "mse"}, "optimizer": {"type": "adam", "lr": 0.02},
        "training": {"epochs": 8, "batch_size": 32, "validation_split": 0.2}})
    assert epochs[-1]["val_loss"] < 0.5 * epochs[0]["val_loss"]
