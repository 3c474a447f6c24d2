"""A job's arrays made ready for training: the train/validation split, the data options
(JobSpec.data: standardize, one-hot targets) fitted on the training rows and applied, and
the targets as the loss expects them.

What the options fitted is the job's preprocessing.json (fit_preprocessing); predictions,
the ONNX export and a rebuilt model apply it exactly as training did (apply_preprocessing).
"""
import numpy as np
import torch

from app.ml.errors import DataError
from app.ml.losses import CLASS_LABEL_LOSSES

PREPROCESSING_VERSION = 1
# one_hot makes rows * classes floats; this keeps the target tensor at or under ~200 MB.
MAX_ONE_HOT_VALUES = 50_000_000


# ---- the split, and the targets as the loss takes them -----------------------------------

def split_indices(n: int, validation_split: float, generator: torch.Generator) -> tuple:
    """Random train/validation split drawn from the job's seeded generator."""
    n_val = int(n * validation_split)
    if n_val == 0:
        return torch.arange(n), None
    perm = torch.randperm(n, generator=generator)
    return perm[n_val:], perm[:n_val]


def targets_for_loss(y: np.ndarray, loss_type: str):
    """The target tensor a loss expects: class indices, or float columns.

    Rows of k values for cross_entropy are class probabilities (one-hot or soft labels): float,
    as nn.CrossEntropyLoss takes them, even when they were stored as whole numbers."""
    if loss_type in CLASS_LABEL_LOSSES and np.ndim(y) == 1:
        return torch.as_tensor(y, dtype=torch.int64)
    t = torch.as_tensor(y, dtype=torch.float32)
    # A 1-D target is one column, matching a (batch, 1) output; left 1-D, the
    # loss would broadcast to (batch, batch) and train on the wrong quantity.
    return t.unsqueeze(1) if t.ndim == 1 else t


# ---- data options (JobSpec.data): fitted on the training rows, saved with the job ----------

def one_hot_width(target_max: float) -> int:
    """One-hot columns for labels 0..max: the training dataset's largest label + 1."""
    return int(target_max) + 1


def fit_preprocessing(x: np.ndarray, y: np.ndarray, train_rows: np.ndarray, *, standardize: bool,
                      targets: str) -> dict:
    """What the data options learn from the training data: the preprocessing.json of a job.

    Feature statistics come from the training rows ``x[train_rows]`` only, so nothing of the
    validation rows leaks into training. They are computed in float64 by numpy; a feature
    that is constant over those rows gets std 1 (it is only centred).
    """
    stats = None
    if standardize:
        rows = x[train_rows].astype(np.float64)
        mean, std = rows.mean(axis=0), rows.std(axis=0)
        std[std == 0] = 1.0
        stats = {"mean": mean.tolist(), "std": std.tolist()}
    width = None
    if targets == "one_hot":
        if y.dtype.kind not in "iu" or y.ndim != 1 or y.min() < 0:
            raise DataError("data.targets", "one_hot needs one integer class label (0 or more) per row")
        width = one_hot_width(y.max())
    return {"version": PREPROCESSING_VERSION, "feature_shape": list(x.shape[1:]), "standardize": stats,
            "targets": targets, "num_classes": width}


def apply_preprocessing(x, preprocessing: dict) -> np.ndarray:
    """Applies a job's preprocessing.json to inputs, exactly as training did.

    ``x``: array-like of shape (rows, *feature_shape). Returns float32 of the same shape:
    x as float32 (as every upload is stored), then, when standardized,
    ``((x as float64) - mean) / std`` cast back to float32.
    """
    x = np.asarray(x, dtype=np.float32)
    shape = tuple(preprocessing["feature_shape"])
    if x.shape[1:] != shape:
        raise DataError("x", f"rows must have shape {list(shape)}, got {list(x.shape[1:])}")
    stats = preprocessing.get("standardize")
    if not stats:
        return x
    mean = np.asarray(stats["mean"], dtype=np.float64)
    std = np.asarray(stats["std"], dtype=np.float64)
    return ((x.astype(np.float64) - mean) / std).astype(np.float32)


def one_hot(y: np.ndarray, num_classes: int, field: str = "data.targets") -> np.ndarray:
    """Class labels (rows,) -> float32 rows (rows, num_classes) with a 1 at each label."""
    if y.dtype.kind not in "iu" or y.ndim != 1 or (len(y) and (y.min() < 0 or y.max() >= num_classes)):
        raise DataError(field, f"one_hot needs integer class labels in 0..{num_classes - 1}")
    out = np.zeros((len(y), num_classes), dtype=np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out


def encode_targets(y: np.ndarray, preprocessing: dict, loss_type: str, field: str = "data.targets"):
    """The target tensor the loss gets: one-hot rows when asked, else as targets_for_loss."""
    if preprocessing["targets"] == "one_hot":
        return torch.as_tensor(one_hot(y, preprocessing["num_classes"], field))
    return targets_for_loss(y, loss_type)
