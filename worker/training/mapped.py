"""Training from data larger than the worker's memory: x and y stay memory-mapped, and each
batch is gathered from the map by index, preprocessed, and moved to the device as it is needed.

It computes exactly what the in-memory path does (worker/training/data.py): the same seeded
split and permutations (the Trainer draws them), the same preprocessing statistics (summed
row by row in float64 in the training rows' order, as numpy sums over axis 0), and each
row's preprocessing and target encoding are elementwise, so a gathered batch holds the same
bits as the same rows taken from the whole preprocessed array. tests/worker/test_mapped_data.py
checks the histories are equal.
"""
from collections.abc import Callable

import numpy as np
import torch

from app.ml import spec as S
from app.ml.errors import DataError
from app.ml.preprocessing import (PREPROCESSING_VERSION, apply_preprocessing, encode_targets, one_hot_width,
                                  split_indices)

CHUNK_ROWS = 65_536  # rows one pass over the map holds at a time (the fit, the teacher's outputs)


class MappedRows:
    """The rows ``rows`` of a mapped x (all of them when None), indexed like a tensor of them."""

    def __init__(self, x: np.ndarray, rows: np.ndarray | None, preprocessing: dict, device: torch.device):
        self.x, self.rows, self.pre, self.device = x, rows, preprocessing, device

    def __len__(self) -> int:
        return len(self.x) if self.rows is None else len(self.rows)

    def indices(self, key) -> np.ndarray | slice:
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        if self.rows is None:
            return key
        return self.rows[key]

    def __getitem__(self, key) -> torch.Tensor:
        block = np.asarray(self.x[self.indices(key)])
        return to_device(torch.as_tensor(apply_preprocessing(_owned(block), self.pre)), self.device)


class MappedTargets(MappedRows):
    """The targets of the same rows, encoded for the loss as they are gathered."""

    def __init__(self, y: np.ndarray, rows: np.ndarray | None, preprocessing: dict, loss_type: str,
                 device: torch.device, field: str = "data.targets"):
        super().__init__(y, rows, preprocessing, device)
        self.loss_type, self.field = loss_type, field

    def __getitem__(self, key) -> torch.Tensor:
        block = _owned(np.asarray(self.x[self.indices(key)]))
        return to_device(encode_targets(block, self.pre, self.loss_type, self.field), self.device)


def _owned(block: np.ndarray) -> np.ndarray:
    """A slice of the map is a view of the file: copied, so torch gets memory it may keep."""
    return block if block.flags.writeable else np.array(block)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A gathered batch to the device. On CUDA from pinned memory without waiting: the copy runs
    while the GPU still works on the previous batch's kernels, and the CPU gathers the next
    (staging ahead; untested here, this machine has no GPU)."""
    if device.type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def fit_mapped(x: np.ndarray, y: np.ndarray, train_rows: np.ndarray, *, standardize: bool, targets: str) -> dict:
    """app.ml.preprocessing.fit_preprocessing, computed in chunks of the training rows."""
    stats = None
    if standardize:
        mean, std = _mean_std(x, train_rows)
        std[std == 0] = 1.0
        stats = {"mean": mean.tolist(), "std": std.tolist()}
    width = None
    if targets == "one_hot":
        low, high = _min_max(y)
        if y.dtype.kind not in "iu" or y.ndim != 1 or low < 0:
            raise DataError("data.targets", "one_hot needs one integer class label (0 or more) per row")
        width = one_hot_width(high)
    return {"version": PREPROCESSING_VERSION, "feature_shape": list(x.shape[1:]), "standardize": stats,
            "targets": targets, "num_classes": width}


def _mean_std(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy's mean and std over axis 0 of x[rows] in float64, the same bits, in chunks.

    Over axis 0 numpy adds row after row; each chunk's sum continues the running one (it is the
    first row of the reduction). A single feature is one contiguous column, which numpy sums
    pairwise instead: that column (8 bytes a row) is gathered whole, as the in-memory path does."""
    if int(np.prod(x.shape[1:], dtype=np.int64)) == 1:
        column = np.asarray(x[rows]).astype(np.float64)
        return column.mean(axis=0), column.std(axis=0)
    n = len(rows)
    total = _running_sum(x, rows, lambda c: c)
    mean = total / n
    squares = _running_sum(x, rows, lambda c: np.square(c - mean))
    return mean, np.sqrt(squares / n)


def _running_sum(x: np.ndarray, rows: np.ndarray, term: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    acc = np.zeros(x.shape[1:], dtype=np.float64)
    for lo in range(0, len(rows), CHUNK_ROWS):
        chunk = term(np.asarray(x[rows[lo:lo + CHUNK_ROWS]]).astype(np.float64))
        acc = np.add.reduce(np.concatenate([acc[None], chunk]), axis=0)
    return acc


def _min_max(y: np.ndarray) -> tuple[float, float]:
    low, high = np.inf, -np.inf
    for lo in range(0, len(y), CHUNK_ROWS):
        block = np.asarray(y[lo:lo + CHUNK_ROWS])
        low, high = min(low, block.min()), max(high, block.max())
    return low, high


def split_mapped(spec: S.JobSpec, x: np.ndarray, y: np.ndarray, gen: torch.Generator, device: torch.device,
                 validation=None, teacher=None):
    """worker/training/data.py's Split, its tensors gathered from the maps batch by batch."""
    from worker.training.data import Split  # the one Split: data.py imports this module
    train_idx, val_idx = split_indices(len(x), spec.training.validation_split, gen)
    rows = train_idx.numpy()
    pre = fit_mapped(x, y, rows, standardize=spec.data.standardize, targets=spec.data.targets)
    loss = spec.loss.type
    x_train, y_train = MappedRows(x, rows, pre, device), MappedTargets(y, rows, pre, loss, device)
    taught = None if teacher is None else torch.cat(
        [teacher(np.asarray(x[rows[lo:lo + CHUNK_ROWS]])) for lo in range(0, len(rows), CHUNK_ROWS)])
    if validation is not None:
        xv, yv = validation
        if xv.shape[1:] != x.shape[1:]:
            raise DataError("data.validation_dataset", f"rows have shape {list(xv.shape[1:])}, "
                            f"the training dataset's {list(x.shape[1:])}")
        return Split(x_train, y_train, MappedRows(xv, None, pre, device),
                     MappedTargets(yv, None, pre, loss, device, "data.validation_dataset"), pre, taught)
    if val_idx is None:
        return Split(x_train, y_train, None, None, pre, taught)
    val = val_idx.numpy()
    return Split(x_train, y_train, MappedRows(x, val, pre, device), MappedTargets(y, val, pre, loss, device), pre, taught)
