"""A job's data as tensors: the split, the data options fitted on the training rows, the targets."""
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from app.datasets import data_path
from app.ml import spec as S
from app.ml.preprocessing import apply_preprocessing, encode_targets, fit_preprocessing, split_indices
from app.ml.errors import DataError
from worker.training.mapped import split_mapped

log = logging.getLogger(__name__)


@dataclass
class Split:
    """The tensors one job trains and validates on, already on the job's device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor | None
    y_val: torch.Tensor | None
    preprocessing: dict  # what the data options fitted: the job's preprocessing.json
    teacher_train: torch.Tensor | None = None  # distill: the teacher's outputs, row for row with y_train


Arrays = tuple[np.ndarray, np.ndarray]


def _loaded(arr: np.ndarray) -> np.ndarray:
    """A mapped array read into memory (the in-memory path: exactly the arrays of before)."""
    return arr if arr.flags.writeable else np.array(arr)


def _fit(spec: S.JobSpec, x: np.ndarray, y: np.ndarray, gen: torch.Generator):
    """Draws the split (the data generator's first draw) and fits the data options on its training rows."""
    train_idx, val_idx = split_indices(len(x), spec.training.validation_split, gen)
    pre = fit_preprocessing(x, y, train_idx.numpy(), standardize=spec.data.standardize,
                            targets=spec.data.targets)
    return train_idx, val_idx, pre


def job_preprocessing(spec: S.JobSpec, x: np.ndarray, y: np.ndarray) -> dict:
    """The preprocessing a job's prepare_data fitted, recomputed from its seed (for the artifact store)."""
    return _fit(spec, x, y, torch.Generator().manual_seed(spec.training.seed))[2]


def prepare_data(spec: S.JobSpec, x: np.ndarray, y: np.ndarray, gen: torch.Generator,
                 device: torch.device, validation: Arrays | None = None,
                 teacher: Callable[[np.ndarray], torch.Tensor] | None = None) -> Split:
    """Splits (x, y) with the job's generator, or validates on a separate (x, y) pair; then
    applies the data options fitted on the training rows and shapes the targets for the loss.
    ``teacher`` (distill): the teacher's outputs for raw rows, kept for the training rows.

    Data over the worker's memory (app/datasets/data_path.py) stays memory-mapped and is
    gathered batch by batch (worker/training/mapped.py); the rest is loaded, as it always was."""
    nbytes = x.nbytes + y.nbytes + (sum(a.nbytes for a in validation) if validation is not None else 0)
    if data_path.choose(nbytes) == data_path.MEMORY_MAPPED:
        data_path.check_mapped(spec)
        log.info("training from memory-mapped data: %s bytes, over a third of WORKER_MEMORY_BYTES", f"{nbytes:,}")
        return split_mapped(spec, x, y, gen, device, validation, teacher)
    x, y = _loaded(x), _loaded(y)
    validation = None if validation is None else (_loaded(validation[0]), _loaded(validation[1]))
    train_idx, val_idx, pre = _fit(spec, x, y, gen)
    X = torch.as_tensor(apply_preprocessing(x, pre))  # float32
    Y = encode_targets(y, pre, spec.loss.type)
    x_train, y_train = X[train_idx].to(device), Y[train_idx].to(device)
    taught = None if teacher is None else teacher(x[train_idx.numpy()])
    if validation is not None:
        xv, yv = validation
        if xv.shape[1:] != x.shape[1:]:
            raise DataError("data.validation_dataset", f"rows have shape {list(xv.shape[1:])}, "
                            f"the training dataset's {list(x.shape[1:])}")
        return Split(x_train, y_train, torch.as_tensor(apply_preprocessing(xv, pre)).to(device),
                     encode_targets(yv, pre, spec.loss.type, "data.validation_dataset").to(device), pre, taught)
    if val_idx is None:
        return Split(x_train, y_train, None, None, pre, taught)
    return Split(x_train, y_train, X[val_idx].to(device), Y[val_idx].to(device), pre, taught)
