"""Test accuracy of documented Trainyard specs on scikit-learn's datasets, next to
scikit-learn's MLPClassifier (MLPRegressor for diabetes) with its defaults, on the same split.

    python bench/sklearn_compare.py            # 3 seeds, writes docs/sklearn_comparison.md
    python bench/sklearn_compare.py --smoke    # 1 seed, few epochs: proves the script works

Everything on the Trainyard side goes through the HTTP API of a real deployment (the
embedded one, started here in a temporary folder): the built-in dataset by name, a job
with validation_split 0.25 and the seed, and the final epoch's val_accuracy. The held-out
quarter is the test set: no early stopping or schedule looks at it. scikit-learn gets
exactly the same rows, found with the same draw Trainyard makes (torch.randperm with a
generator seeded with the job's seed), and its own defaults (no feature scaling).
"""
import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.ml import builtin_datasets as builtin  # noqa: E402
from tests.stack import Stack  # noqa: E402

SPLIT = 0.25
MLP = [{"type": "linear", "out_features": 64}, {"type": "relu"}, {"type": "dropout", "p": 0.1},
       {"type": "linear", "out_features": 64}, {"type": "relu"}]
CNN = [{"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1}, {"type": "relu"},
       {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1}, {"type": "relu"},
       {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"},
       {"type": "dropout", "p": 0.25}, {"type": "linear", "out_features": 128}, {"type": "relu"}]


def specs(epochs: int) -> dict[str, dict]:
    """The documented spec for each dataset (docs/sklearn_comparison.md repeats them)."""
    classify = {"loss": {"type": "cross_entropy"}, "data": {"standardize": True},
                "optimizer": {"type": "adamw", "lr": 3e-3, "weight_decay": 1e-2},
                "schedule": {"type": "cosine"}}
    return {
        "iris": {**classify, "model": {"layers": [*MLP, {"type": "linear", "out_features": 3}]},
                 "training": {"epochs": epochs, "batch_size": 16}},
        "wine": {**classify, "model": {"layers": [*MLP, {"type": "linear", "out_features": 3}]},
                 "training": {"epochs": epochs, "batch_size": 16}},
        "breast_cancer": {**classify, "model": {"layers": [*MLP, {"type": "linear", "out_features": 2}]},
                          "training": {"epochs": epochs, "batch_size": 32}},
        "digits": {**classify, "model": {"layers": [*CNN, {"type": "linear", "out_features": 10}]},
                   "training": {"epochs": max(epochs // 4, 1), "batch_size": 32}},
        "diabetes": {"loss": {"type": "mse"}, "data": {"standardize": True},
                     "model": {"layers": [{"type": "linear", "out_features": 32}, {"type": "relu"},
                                          {"type": "linear", "out_features": 1}]},
                     "optimizer": {"type": "adam", "lr": 1e-2}, "schedule": {"type": "cosine"},
                     "training": {"epochs": epochs, "batch_size": 32}},
    }


def split(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Trainyard's split (app.ml.preprocessing.split_indices): train rows, test rows."""
    perm = torch.randperm(rows, generator=torch.Generator().manual_seed(seed)).numpy()
    n_test = int(rows * SPLIT)
    return perm[n_test:], perm[:n_test]


def sklearn_score(name: str, seed: int) -> float:
    from sklearn.metrics import r2_score
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    data = builtin.load(name)
    x, y = data.x.reshape(len(data.x), -1), data.y
    tr, te = split(len(x), seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its default max_iter often stops before convergence
        if name == "diabetes":
            model = MLPRegressor(random_state=seed).fit(x[tr], y[tr])
            return r2_score(y[te], model.predict(x[te]))
        return MLPClassifier(random_state=seed).fit(x[tr], y[tr]).score(x[te], y[te])


def trainyard_score(api, name: str, spec: dict, seed: int) -> float:
    body = {**spec, "dataset": name,
            "training": {**spec["training"], "seed": seed, "validation_split": SPLIT,
                         "log_every_steps": 10**6}}
    r = api.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    while (job := api.get(f"/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
        time.sleep(0.2)
    assert job["status"] == "succeeded", job
    last = api.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"][-1]
    if name != "diabetes":
        return last["val_accuracy"]
    data = builtin.load(name)
    _, te = split(len(data.y), seed)
    return 1 - last["val_loss"] / float(np.var(data.y[te]))  # R^2 from the test MSE


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    seeds = [0] if args.smoke else [0, 1, 2]
    table = specs(epochs=4 if args.smoke else 100)
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack("bench", Path(tmp), {}).start()
        try:
            with stack.client(stack.new_key("bench")) as api:
                for name, spec in table.items():
                    ours = statistics.mean(trainyard_score(api, name, spec, s) for s in seeds)
                    theirs = statistics.mean(sklearn_score(name, s) for s in seeds)
                    metric = "R^2" if name == "diabetes" else "accuracy"
                    rows.append((name, metric, ours, theirs))
                    ok &= ours >= theirs
                    print(f"{name:14} {metric:9} trainyard {ours:.4f}   sklearn {theirs:.4f}", flush=True)
        finally:
            stack.stop()
    if not args.smoke:
        write_doc(rows, seeds, table)
    return 0 if ok or args.smoke else 1


def write_doc(rows, seeds, table) -> None:
    import json

    lines = ["# Trainyard vs scikit-learn's MLP on scikit-learn's datasets", "",
             "Generated by `python bench/sklearn_compare.py`: mean over seeds "
             f"{seeds} of the held-out quarter's score (`validation_split` 0.25, the same rows for "
             "both). scikit-learn: `MLPClassifier()` / `MLPRegressor()` with their defaults on the raw "
             "features. Trainyard: the specs below, trained through the HTTP API.", "",
             "| dataset | metric | Trainyard | scikit-learn MLP |", "| --- | --- | --- | --- |"]
    lines += [f"| {n} | {m} | {a:.4f} | {b:.4f} |" for n, m, a, b in rows]
    lines += ["", "## Specs", ""]
    for name, spec in table.items():
        lines += [f"`{name}`:", "", "```json", json.dumps({"dataset": name, **spec}, indent=1), "```", ""]
    (ROOT / "docs" / "sklearn_comparison.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
