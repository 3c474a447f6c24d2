"""The product promise: a Trainyard job computes exactly what a plain PyTorch loop computes.

``plain_loop`` below is the loop of docs/equivalence.md, written with torch alone: the
model, loss and optimizer of each case are built by hand, not by Trainyard, each optimizer
with the implementation flag the page names (fused, or foreach). The trainer must match it
bit for bit (``==`` on floats, ``torch.equal`` on weights) on the CPU.
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

from app.ml.spec import JobSpec
from tests.direct_modes import DIRECT
from worker.training import Hooks, train

CPU = torch.device("cpu")


# ---- the plain loop (no Trainyard code) ------------------------------------------

def plain_loop(x, y, *, make_model, make_optimizer, loss_fn, loss_type, epochs, batch_size,
               validation_split, shuffle, seed, standardize=False, one_hot=False, validation=None):
    """Returns (every batch loss, per-epoch dicts, trained model), as docs/equivalence.md."""
    torch.manual_seed(seed)                        # 1. global RNG: init (and later dropout)
    model = make_model()                           #    built on the CPU, in spec order
    optimizer = make_optimizer(model.parameters())
    g = torch.Generator().manual_seed(seed)        # 2. data RNG: split, then epoch orders

    def targets(labels):
        if one_hot:                                # width: the training dataset's largest label + 1
            return nn.functional.one_hot(torch.as_tensor(labels), int(y.max()) + 1).to(torch.float32)
        if loss_type == "cross_entropy" and labels.ndim == 1:
            return torch.as_tensor(labels, dtype=torch.int64)
        # cross_entropy's (n, k) class-probability rows, and every element-wise target: float32
        t = torch.as_tensor(labels, dtype=torch.float32)
        return t.unsqueeze(1) if t.ndim == 1 else t  # a 1-D target is one column

    n = len(x)
    n_val = int(n * validation_split)
    if n_val == 0:
        train_idx, val_idx = torch.arange(n), None  # no randperm drawn
    else:
        perm = torch.randperm(n, generator=g)
        val_idx, train_idx = perm[:n_val], perm[n_val:]
    if standardize:                                # numpy, float64, training rows only
        xt = x[train_idx.numpy()].astype(np.float64)
        mean, std = xt.mean(axis=0), xt.std(axis=0)
        std[std == 0] = 1.0
        x = ((x.astype(np.float64) - mean) / std).astype(np.float32)
        if validation is not None:
            validation = (((validation[0].astype(np.float64) - mean) / std).astype(np.float32), validation[1])
    X, Y = torch.as_tensor(x, dtype=torch.float32), targets(y)
    x_tr, y_tr = X[train_idx], Y[train_idx]
    if validation is not None:                     # a separate validation dataset
        x_val, y_val = torch.as_tensor(validation[0], dtype=torch.float32), targets(validation[1])
    elif val_idx is not None:
        x_val, y_val = X[val_idx], Y[val_idx]
    else:
        x_val = y_val = None

    n_train = len(x_tr)
    bs = n_train if batch_size == "full" else min(batch_size, n_train)
    steps = math.ceil(n_train / bs)
    batch_losses, epoch_points = [], []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n_train, generator=g) if shuffle else torch.arange(n_train)
        total = torch.zeros(())                    # float32 accumulator
        for b in range(steps):
            idx = order[b * bs:(b + 1) * bs]
            xb, yb = x_tr[idx], y_tr[idx]
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            batch_losses.append(loss.item())
            total += loss.detach() * len(xb)
        point = {"train_loss": (total / n_train).item()}
        if x_val is not None:
            point.update(plain_evaluate(model, loss_fn, x_val, y_val, loss_type))
        epoch_points.append(point)
    return batch_losses, epoch_points, model


def plain_evaluate(model, loss_fn, xv, yv, loss_type, chunk=8192):
    model.eval()
    total, correct = torch.zeros(()), torch.zeros(())
    with torch.no_grad():
        for i in range(0, len(xv), chunk):
            out, yb = model(xv[i:i + chunk]), yv[i:i + chunk]
            total += loss_fn(out, yb) * len(yb)
            if loss_type == "cross_entropy":               # a probability row's class: its argmax
                correct += (out.argmax(dim=1) == (yb.argmax(dim=1) if yb.ndim == 2 else yb)).sum()
            elif loss_type == "bce_with_logits":
                correct += ((out > 0) == (yb > 0.5)).float().mean(dim=1).sum()
    model.train()
    point = {"val_loss": (total / len(xv)).item()}
    if loss_type in ("cross_entropy", "bce_with_logits"):
        point["val_accuracy"] = (correct / len(xv)).item()
    return point


# ---- cases: a job spec and the same thing written by hand ---------------------------

def _mlp_dropout():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((203, 10)).astype(np.float32)  # 40 val, 163 train: last batch of 3
    y = rng.integers(0, 3, 203).astype(np.int64)
    spec = {
        "model": {"layers": [{"type": "linear", "out_features": 32}, {"type": "relu"},
                             {"type": "dropout", "p": 0.3}, {"type": "linear", "out_features": 3}]},
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
        "training": {"epochs": 3, "batch_size": 16, "validation_split": 0.2, "shuffle": True,
                     "seed": 7, "log_every_steps": 3},
    }
    plain = dict(
        make_model=lambda: nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3)),
        make_optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, fused=True),
        loss_fn=nn.CrossEntropyLoss(),
    )
    return spec, x, y, plain


def _mse_full_batch_adam():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = (x @ rng.standard_normal(5) + 0.1 * rng.standard_normal(64)).astype(np.float32)  # 1-D
    spec = {
        "model": {"layers": [{"type": "linear", "out_features": 16}, {"type": "tanh"},
                             {"type": "linear", "out_features": 1}]},
        "loss": {"type": "mse"},
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 6, "batch_size": "full", "validation_split": 0.0, "shuffle": False,
                     "seed": 3, "log_every_steps": 1},
    }
    plain = dict(
        make_model=lambda: nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1)),
        make_optimizer=lambda p: torch.optim.Adam(p, lr=0.01, fused=True),
        loss_fn=nn.MSELoss(),
    )
    return spec, x, y, plain


def _batchnorm_rmsprop_bce():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((92, 6)).astype(np.float32)  # 9 val, 83 train: last batch of 3
    y = (x[:, :1] + x[:, 1:2] > 0).astype(np.float32)    # (n, 1) of 0/1
    spec = {
        "model": {"layers": [{"type": "linear", "out_features": 12}, {"type": "batchnorm1d"},
                             {"type": "relu"}, {"type": "linear", "out_features": 1}]},
        "loss": {"type": "bce_with_logits"},
        "optimizer": {"type": "rmsprop", "lr": 0.005, "momentum": 0.5, "centered": True},
        "training": {"epochs": 3, "batch_size": 16, "validation_split": 0.1, "shuffle": True,
                     "seed": 11, "log_every_steps": 2},
    }
    plain = dict(
        make_model=lambda: nn.Sequential(nn.Linear(6, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 1)),
        make_optimizer=lambda p: torch.optim.RMSprop(p, lr=0.005, momentum=0.5, centered=True,
                                                     foreach=True),
        loss_fn=nn.BCEWithLogitsLoss(),
    )
    return spec, x, y, plain


def _per_sample_sgd():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 3)).astype(np.float32)  # 2 val, 6 train
    y = rng.standard_normal((8, 2)).astype(np.float32)
    spec = {
        "model": {"layers": [{"type": "linear", "out_features": 4}, {"type": "leaky_relu"},
                             {"type": "linear", "out_features": 2}]},
        "loss": {"type": "l1"},
        "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
        "training": {"epochs": 4, "batch_size": 1, "validation_split": 0.25, "shuffle": True,
                     "seed": 5, "log_every_steps": 1},
    }
    plain = dict(
        make_model=lambda: nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(), nn.Linear(4, 2)),
        make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3,
                                                 fused=True),
        loss_fn=nn.L1Loss(),
    )
    return spec, x, y, plain


def _batch_larger_than_rows():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 4)).astype(np.float32)
    y = rng.integers(0, 2, 20).astype(np.int64)
    spec = {
        "model": {"layers": [{"type": "linear", "out_features": 2}]},
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "adamw", "lr": 0.05},
        "training": {"epochs": 5, "batch_size": 64, "shuffle": True, "seed": 9, "log_every_steps": 1},
    }
    plain = dict(
        make_model=lambda: nn.Sequential(nn.Linear(4, 2)),
        make_optimizer=lambda p: torch.optim.AdamW(p, lr=0.05, fused=True),
        loss_fn=nn.CrossEntropyLoss(),
    )
    return spec, x, y, plain


def _standardized():
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((90, 4)) * [1, 50, 0.01, 3] + [0, 100, -5, 7]).astype(np.float32)
    x[:, 3] = 7.5                                          # constant: std 0 becomes 1
    y = (x[:, 0] + (x[:, 1] - 100) / 50 > 0).astype(np.int64)
    spec = {
        "model": {"layers": [{"type": "linear", "out_features": 8}, {"type": "relu"},
                             {"type": "linear", "out_features": 2}]},
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "lr": 0.1},
        "training": {"epochs": 3, "batch_size": 16, "validation_split": 0.3, "shuffle": True,
                     "seed": 12, "log_every_steps": 2},
        "data": {"standardize": True},
    }
    plain = dict(
        make_model=lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
        make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1, fused=True),
        loss_fn=nn.CrossEntropyLoss(), standardize=True,
    )
    return spec, x, y, plain


def _one_hot_mse():
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((60, 3)) * 4 + 2).astype(np.float32)
    y = rng.integers(0, 4, 60).astype(np.int64)
    spec = {
        "model": {"layers": [{"type": "linear", "out_features": 6}, {"type": "tanh"},
                             {"type": "linear", "out_features": 4}]},
        "loss": {"type": "mse"},
        "optimizer": {"type": "adam", "lr": 0.02},
        "training": {"epochs": 4, "batch_size": 8, "validation_split": 0.2, "shuffle": True,
                     "seed": 13, "log_every_steps": 3},
        "data": {"standardize": True, "targets": "one_hot"},
    }
    plain = dict(
        make_model=lambda: nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4)),
        make_optimizer=lambda p: torch.optim.Adam(p, lr=0.02, fused=True),
        loss_fn=nn.MSELoss(), standardize=True, one_hot=True,
    )
    return spec, x, y, plain


def _one_hot_bce_validation_dataset():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((50, 5)).astype(np.float32)
    y = rng.integers(0, 3, 50).astype(np.int64)
    validation = (rng.standard_normal((21, 5)).astype(np.float32), rng.integers(0, 3, 21).astype(np.int64))
    spec = {
        "model": {"layers": [{"type": "linear", "out_features": 3}]},
        "loss": {"type": "bce_with_logits"},
        "optimizer": {"type": "sgd", "lr": 0.3, "momentum": 0.5},
        "training": {"epochs": 3, "batch_size": 7, "shuffle": True, "seed": 14, "log_every_steps": 1},
        "data": {"standardize": True, "targets": "one_hot", "validation_dataset": "ds_val"},
    }
    plain = dict(
        make_model=lambda: nn.Sequential(nn.Linear(5, 3)),
        make_optimizer=lambda p: torch.optim.SGD(p, lr=0.3, momentum=0.5, fused=True),
        loss_fn=nn.BCEWithLogitsLoss(), standardize=True, one_hot=True, validation=validation,
    )
    return spec, x, y, plain


def _soft_labels_cross_entropy():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((70, 4)).astype(np.float32)  # 14 val, 56 train
    logits = x[:, :3] * 2 + rng.standard_normal((70, 3))
    y = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)  # soft labels
    spec = {
        "model": {"layers": [{"type": "linear", "out_features": 8}, {"type": "relu"},
                             {"type": "linear", "out_features": 3}]},
        "loss": {"type": "cross_entropy", "label_smoothing": 0.1, "weight": [1.0, 2.0, 0.5]},
        "optimizer": {"type": "adam", "lr": 0.02},
        "training": {"epochs": 3, "batch_size": 10, "validation_split": 0.2, "shuffle": True,
                     "seed": 15, "log_every_steps": 2},
    }
    plain = dict(
        make_model=lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)),
        make_optimizer=lambda p: torch.optim.Adam(p, lr=0.02, fused=True),
        loss_fn=nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]), label_smoothing=0.1),
    )
    return spec, x, y, plain


def _integer_one_hot_rows_cross_entropy():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.int64)[rng.integers(0, 3, 40)]  # (n, 3) of 0/1, as inline JSON stores them
    spec = {
        "model": {"layers": [{"type": "linear", "out_features": 3}]},
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "sgd", "lr": 0.2},
        "training": {"epochs": 3, "batch_size": 8, "validation_split": 0.25, "shuffle": True,
                     "seed": 16, "log_every_steps": 1},
    }
    plain = dict(
        make_model=lambda: nn.Sequential(nn.Linear(3, 3)),
        make_optimizer=lambda p: torch.optim.SGD(p, lr=0.2, fused=True),
        loss_fn=nn.CrossEntropyLoss(),
    )
    return spec, x, y, plain


def _one_hot_cross_entropy():
    spec, x, y, plain = _standardized()
    spec = {**spec, "data": {"standardize": True, "targets": "one_hot"}}
    return spec, x, y, {**plain, "one_hot": True}


CASES = {
    "mlp_dropout_sgd_momentum_val_shuffle": _mlp_dropout,
    "mse_1d_target_full_batch_adam": _mse_full_batch_adam,
    "batchnorm_rmsprop_bce": _batchnorm_rmsprop_bce,
    "per_sample_sgd": _per_sample_sgd,
    "batch_size_clipped_to_rows": _batch_larger_than_rows,
    "standardized_val_split": _standardized,
    "one_hot_mse_standardized": _one_hot_mse,
    "one_hot_bce_validation_dataset": _one_hot_bce_validation_dataset,
    "soft_labels_cross_entropy_smoothing_weight": _soft_labels_cross_entropy,
    "integer_one_hot_rows_cross_entropy": _integer_one_hot_rows_cross_entropy,
    "one_hot_cross_entropy_standardized": _one_hot_cross_entropy,
}


def run_trainer(spec_dict: dict, x, y, validation=None, direct=True):
    spec = JobSpec.model_validate({"dataset": "ds_test", **spec_dict})
    points = []
    hooks = Hooks(flush=lambda pts, epoch, step: points.extend(pts), flush_seconds=0)
    model = train(spec, x, y, CPU, hooks, validation, direct=direct).model
    return points, model


def history(points):
    """What must be reproducible: every point without its wall-clock timings."""
    return [{k: v for k, v in p.items() if k not in ("epoch_seconds", "samples_per_second")}
            for p in points]


@pytest.mark.parametrize("direct", DIRECT)
@pytest.mark.parametrize("case", list(CASES))
def test_trainer_equals_plain_pytorch_loop(case, direct):
    spec, x, y, plain = CASES[case]()
    t = spec["training"]
    points, model = run_trainer(spec, x, y, plain.get("validation"), direct)
    batch_losses, plain_epochs, plain_model = plain_loop(
        x, y, loss_type=spec["loss"]["type"], epochs=t["epochs"], batch_size=t["batch_size"],
        validation_split=t.get("validation_split", 0.0), shuffle=t["shuffle"], seed=t["seed"], **plain)

    every = t["log_every_steps"]
    step_points = [p for p in points if p["kind"] == "step"]
    assert [p["step"] for p in step_points] == list(range(every, len(batch_losses) + 1, every))
    assert [p["train_loss"] for p in step_points] == [batch_losses[p["step"] - 1] for p in step_points]

    epoch_points = [p for p in points if p["kind"] == "epoch"]
    assert [p["epoch"] for p in epoch_points] == list(range(1, t["epochs"] + 1))
    steps_per_epoch = len(batch_losses) // t["epochs"]
    assert [p["step"] for p in epoch_points] == [e * steps_per_epoch for e in range(1, t["epochs"] + 1)]
    for got, want in zip(epoch_points, plain_epochs, strict=True):
        assert got["train_loss"] == want["train_loss"]
        assert got.get("val_loss") == want.get("val_loss")
        assert got.get("val_accuracy") == want.get("val_accuracy")
        assert got["lr"] == spec["optimizer"]["lr"]
        assert set(got) >= {"epoch_seconds", "samples_per_second"}

    got_state, want_state = model.state_dict(), plain_model.state_dict()
    assert list(got_state) == list(want_state)
    for name in want_state:
        assert torch.equal(got_state[name], want_state[name]), name


def test_same_seed_same_history_other_seed_differs():
    spec, x, y, _ = _mlp_dropout()
    first, m1 = run_trainer(spec, x, y)
    second, m2 = run_trainer(spec, x, y)
    assert history(first) == history(second)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))

    other = {**spec, "training": {**spec["training"], "seed": 8}}
    third, m3 = run_trainer(other, x, y)
    assert len(third) == len(first)
    assert history(third) != history(first)
    assert [p["train_loss"] for p in third if p["kind"] == "epoch"] != \
        [p["train_loss"] for p in first if p["kind"] == "epoch"]
    assert not torch.equal(m3.state_dict()["0.weight"], m1.state_dict()["0.weight"])
