"""training.devices: N data parallel ranks (DDP, gloo on the CPU; NCCL where the machine has two GPUs)
started by the worker's launcher train what one process does with the same global batch: the loss
history and the validation metrics equal within the all-reduce's rounding (docs/equivalence.md), a short
last batch (a rank with no rows) and shuffling included; a failed rank ends every rank."""
import json
import math
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from app.ml.spec import JobSpec
from worker import parallel
from worker.training import Hooks, train

# The bound docs/equivalence.md states for training.devices: relative, on every loss and metric.
RELATIVE = 1e-5
TIMED = ("epoch_seconds", "samples_per_second")
# (device, ranks): NCCL needs a GPU per rank; a machine with one GPU checks the NCCL path with 1 rank.
GPUS = torch.cuda.device_count()
DEVICES = [("cpu", 2)] + ([("cuda", min(GPUS, 2))] if GPUS else [])


def job(device: str, **training) -> JobSpec:
    return JobSpec.model_validate({
        "dataset": "ds_test", "loss": {"type": "cross_entropy"},
        "model": {"layers": [{"type": "linear", "out_features": 16}, {"type": "relu"},
                             {"type": "linear", "out_features": 3}]},
        "optimizer": {"type": "adam", "lr": 0.01},
        "regularization": {"l2": 1e-3, "grad_clip": {"type": "norm", "max_norm": 1.0}},
        "training": {"epochs": 4, "batch_size": 32, "log_every_steps": 1, "validation_split": 0.25, "seed": 3,
                     "device": device, **training},
        "data": {"standardize": True}})


def data(n=300, features=5):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    return (rng.normal(size=(n, features)) + y[:, None]).astype(np.float32), y.astype(np.int64)


def one_process(spec: JobSpec, x, y):
    points = []
    result = train(spec, x, y, torch.device(spec.training.device), Hooks(flush=lambda p, e, s: points.extend(p),
                                                                            flush_seconds=0))
    return [{k: float(v) if isinstance(v, torch.Tensor) else v for k, v in p.items()} for p in points], \
        result.model.state_dict()


def ranks(tmp_path, spec: JobSpec, x, y, world=2):
    (tmp_path / "spec.json").write_text(spec.model_dump_json())
    np.savez(tmp_path / "data.npz", x=x, y=y)
    out = tmp_path / "points.json"
    parallel.launch(world, "tests.worker.ddp_rank", str(tmp_path / "spec.json"), str(tmp_path / "data.npz"),
                    str(out), run_id=f"test-{time.monotonic_ns()}")
    return json.loads(out.read_text()), load_file(str(out) + ".safetensors")


def assert_close_values(got, want, key=""):
    """Numbers within RELATIVE of each other (nested: a point's per-layer norms); the rest equal."""
    if isinstance(want, dict):
        assert got.keys() == want.keys(), key
        for k in want:
            if k not in TIMED:
                assert_close_values(got[k], want[k], f"{key}.{k}")
    elif isinstance(want, float):
        assert math.isclose(got, want, rel_tol=RELATIVE, abs_tol=1e-7), (key, got, want)
    else:
        assert got == want, key


def assert_equal_within_bound(parallel_points, single_points):
    assert len(parallel_points) == len(single_points)
    for i, (got, want) in enumerate(zip(parallel_points, single_points)):
        assert_close_values(got, want, f"points[{i}]")


@pytest.mark.parametrize("device, world", DEVICES, ids=[f"{d}-{n}" for d, n in DEVICES])
@pytest.mark.parametrize("training", [{}, {"batch_size": 50, "shuffle": False}, {"batch_size": 7}],
                         ids=["last-batch-of-1", "no-shuffle", "odd-chunks"])
def test_two_ranks_train_what_one_process_does(tmp_path, device, world, training):
    x, y = data()
    spec = job(device, **training)
    single, single_weights = one_process(spec, x, y)
    assert 225 % spec.training.batch_size in (1, 25)  # 225 training rows: a short last batch in each case
    points, weights = ranks(tmp_path, spec, x, y, world)
    assert_equal_within_bound(points, single)
    assert any("val_loss" in p for p in points)
    assert sum(p["kind"] == "step" for p in points) == 4 * math.ceil(225 / spec.training.batch_size)
    for name, value in single_weights.items():
        torch.testing.assert_close(weights[name], value.cpu(), rtol=1e-4, atol=1e-5)


def test_a_rank_that_fails_ends_every_rank(tmp_path):
    x, y = data()
    spec = job("cpu", epochs=2)
    (tmp_path / "spec.json").write_text(spec.model_dump_json())
    np.savez(tmp_path / "data.npz", x=x[:, :4], y=y)  # neither rank exists then: the launcher reports it
    with pytest.raises(parallel.RanksFailed, match="exit code 1"):
        parallel.launch(2, "tests.worker.ddp_rank", str(tmp_path / "spec.json"), "/nonexistent.npz",
                        str(tmp_path / "out"), run_id=f"test-{time.monotonic_ns()}")
