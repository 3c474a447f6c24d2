"""Training from data larger than the worker's memory (worker/training/mapped.py): a dataset
forced onto the memory-mapped path trains exactly as it does from memory, and the statistics
fitted in chunks are numpy's, bit for bit."""
import numpy as np
import pytest
import torch

from app.config import get_settings
from app.datasets import stored
from app.ml.errors import SpecError
from app.ml.preprocessing import fit_preprocessing
from app.ml.spec import JobSpec
from app.storage import ArtifactStore
from worker.training import Hooks, Trainer, train
from worker.training import mapped

CPU = torch.device("cpu")


@pytest.fixture
def memory(monkeypatch):
    """Sets WORKER_MEMORY_BYTES for the test (the settings are cached: cleared before and after)."""
    def set_to(nbytes: int) -> None:
        monkeypatch.setenv("WORKER_MEMORY_BYTES", str(nbytes))
        get_settings.cache_clear()
    yield set_to
    monkeypatch.delenv("WORKER_MEMORY_BYTES", raising=False)
    get_settings.cache_clear()


def mapped_arrays(tmp_path, x, y):
    store = ArtifactStore(tmp_path / "store")
    stored.write_arrays(store, "sha", x, y)
    return stored.open_mapped(store, "sha")


def job(**overrides) -> JobSpec:
    body = {"dataset": "ds_test", "loss": {"type": "cross_entropy"},
            "model": {"layers": [{"type": "linear", "out_features": 16}, {"type": "relu"},
                                 {"type": "dropout", "p": 0.1}, {"type": "linear", "out_features": 3}]},
            "optimizer": {"type": "adam", "lr": 0.01},
            "training": {"epochs": 4, "batch_size": 32, "log_every_steps": 1, "validation_split": 0.25, "seed": 3},
            "data": {"standardize": True}}
    for section, values in overrides.items():
        body[section] = {**body.get(section, {}), **values} if isinstance(values, dict) else values
    return JobSpec.model_validate(body)


def history(spec: JobSpec, x, y, validation=None):
    points = []
    hooks = Hooks(flush=lambda p, e, s: points.extend(p), flush_seconds=0)
    result = train(spec, x, y, CPU, hooks, validation)
    weights = {k: v.clone() for k, v in result.model.state_dict().items()}
    return [{k: v for k, v in p.items() if k not in ("epoch_seconds", "samples_per_second")} for p in points], weights


def data(n=300, features=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(size=(n, features)) * 4 + y[:, None] + 10).astype(np.float32), y.astype(np.int64)


@pytest.mark.parametrize("overrides", [{}, {"data": {"standardize": False, "targets": "one_hot"}},
                                       {"training": {"shuffle": False, "validation_split": 0.0}}],
                         ids=["standardize-split", "one-hot", "no-shuffle"])
def test_the_memory_mapped_path_gives_the_in_memory_history_bit_for_bit(tmp_path, memory, overrides):
    x, y = mapped_arrays(tmp_path, *data())
    spec = job(**overrides)
    memory(10**12)
    assert isinstance(Trainer(spec, x, y, CPU).data.x_train, torch.Tensor)
    in_memory = history(spec, x, y)
    memory(1)  # every dataset is over a third of one byte: the mapped path
    assert isinstance(Trainer(spec, x, y, CPU).data.x_train, mapped.MappedRows)
    from_map = history(spec, x, y)
    assert from_map[0] == in_memory[0]  # every point: losses, rates, norms, validation metrics
    for name, tensor in in_memory[1].items():
        assert torch.equal(tensor, from_map[1][name]), name


def test_a_separate_validation_dataset_is_gathered_from_its_map_too(tmp_path, memory):
    x, y = mapped_arrays(tmp_path / "train", *data())
    xv, yv = mapped_arrays(tmp_path / "val", *data(100, seed=1))
    spec = job(training={"validation_split": 0.0})
    memory(10**12)
    in_memory = history(spec, x, y, (xv, yv))
    memory(1)
    assert history(spec, x, y, (xv, yv))[0] == in_memory[0]


@pytest.mark.parametrize("shape", [(1000, 1), (1000, 4), (5000, 31), (3001, 2, 3), (200_000, 1), (200_000, 3)])
def test_statistics_fitted_in_chunks_are_numpys_bit_for_bit(shape, monkeypatch):
    monkeypatch.setattr(mapped, "CHUNK_ROWS", 777)  # many chunks, none aligned with anything
    rng = np.random.default_rng(1)
    x = (rng.normal(size=shape) * 10 + 3).astype(np.float32)
    y = rng.integers(0, 4, shape[0])
    rows = rng.permutation(shape[0])[: int(shape[0] * 0.8)]
    expected = fit_preprocessing(x, y, rows, standardize=True, targets="one_hot")
    assert mapped.fit_mapped(x, y, rows, standardize=True, targets="one_hot") == expected


@pytest.mark.parametrize("overrides,field", [
    ({"optimizer": {"type": "conjugate_gradient"}, "training": {"batch_size": "full"}}, "optimizer.type"),
    ({"training": {"batch_size": "full"}}, "training.batch_size"),
])
def test_what_needs_every_row_in_memory_is_refused_on_the_mapped_path(tmp_path, memory, overrides, field):
    x, y = mapped_arrays(tmp_path, *data())
    memory(1)
    with pytest.raises(SpecError) as info:
        train(job(**overrides), x, y, CPU)
    assert info.value.field == field
