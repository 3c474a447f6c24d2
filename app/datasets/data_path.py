"""Which path a job's data takes on a worker: held in memory (today's), or memory-mapped and
gathered batch by batch, chosen by the data's size against WORKER_MEMORY_BYTES.

The API's pre-flight and the worker ask the same function, each with its own setting (set it
alike on both); the worker's answer is the one that trains.
"""
import os

import numpy as np

from app.config import get_settings
from app.ml import spec as S
from app.ml.errors import SpecError
from app.ml.optimizers import FULL_BATCH

IN_MEMORY, MEMORY_MAPPED = "in_memory", "memory_mapped"
# The in-memory path holds the raw arrays, the preprocessed copy and the split's gathered
# training (and validation) rows: about three copies of the data at once (worker/training/data.py).
IN_MEMORY_COPIES = 3


def worker_memory_bytes() -> int:
    """WORKER_MEMORY_BYTES, or half this machine's RAM when it is 0."""
    configured = get_settings().worker_memory_bytes
    if configured:
        return configured
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def data_bytes(rows: int, feature_shape, target_shape, target_kind: str) -> int:
    """The dataset's arrays as stored: float32 features, int64 or float32 targets."""
    per_row = 4 * int(np.prod(feature_shape, dtype=np.int64)) + \
        (8 if target_kind == "integer" else 4) * int(np.prod(target_shape, dtype=np.int64))
    return rows * per_row


def choose(nbytes: int, memory: int | None = None) -> str:
    memory = worker_memory_bytes() if memory is None else memory
    return IN_MEMORY if IN_MEMORY_COPIES * nbytes <= memory else MEMORY_MAPPED


def describe(path: str, nbytes: int, memory: int) -> str:
    size, budget = _gib(nbytes), _gib(memory)
    if path == IN_MEMORY:
        return (f"the data ({size}) fits the worker's memory ({budget}, WORKER_MEMORY_BYTES) with its "
                f"copies ({IN_MEMORY_COPIES}x): it is loaded and trained from memory")
    return (f"the data ({size}) is over a third of the worker's memory ({budget}, WORKER_MEMORY_BYTES): "
            "it is memory-mapped, and each batch is gathered from the map by index")


def check_mapped(spec: S.JobSpec) -> None:
    """Refuses what needs every training row in memory at once, on the memory-mapped path."""
    note = "needs every training row in memory at once; the dataset is too large for the worker's memory"
    if spec.optimizer.type in FULL_BATCH:
        raise SpecError("optimizer.type", f"{spec.optimizer.type} {note} (WORKER_MEMORY_BYTES); "
                                          "use a minibatch optimizer such as adam")
    if spec.training.batch_size == "full":
        raise SpecError("training.batch_size", f"\"full\" {note} (WORKER_MEMORY_BYTES); give a batch size")


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"
