"""A dataset's arrays in memory (ParsedDataset), the upload limits, and inline JSON rows parsed.

Files (.csv, .parquet, .arrow, .npz) are read by app/datasets/ingest/, streaming to disk with
the same rules; arrays here are the small ones: inline JSON and builtins. Both are normalized
to two arrays: ``x`` (float32, shape (rows, *features))
and ``y`` (int64 class labels or float32 values, shape (rows,) or (rows, k)). A builtin
(app/ml/builtin_datasets.py) becomes the same ParsedDataset, so both are stored alike.
"""
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.ml.errors import DataError

MAX_LISTED_CLASSES = 1000
FLOAT32 = 4


@dataclass(frozen=True)
class FileLimits:
    """What one upload may unpack to (the API's MAX_DATASET_BYTES, MAX_CSV_COLUMNS).

    Checked as the file is read, so a small file cannot become a large dataset: an .npz's
    arrays by their declared sizes (app/ml/npz_sizes.py), a table's cells at 4 bytes each as
    they are read (app/datasets/ingest/builder.py)."""

    max_bytes: int = 10 * 2**30
    max_columns: int = 10_000


@dataclass
class ParsedDataset:
    x: np.ndarray
    y: np.ndarray
    feature_names: list[str] | None = None
    target_names: list[str] | None = None
    classes: list | None = None  # label of each class index, for categorical targets
    extra: dict = field(default_factory=dict)

    @property
    def target_kind(self) -> str:
        return "integer" if self.y.dtype.kind in "iu" else "float"

    def digest(self) -> str:
        """Content address of the data itself, independent of the upload's format."""
        h = hashlib.sha256()
        for arr in (self.x, self.y):
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(np.ascontiguousarray(arr))  # the buffer itself: tobytes() copied it
        return h.hexdigest()

    def to_npz(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, x=self.x, y=self.y)
        return buf.getvalue()

    def class_labels(self) -> list | None:
        if self.classes is not None:
            return self.classes
        if self.target_kind == "integer" and self.y.ndim == 1:
            values = np.unique(self.y)
            if len(values) <= MAX_LISTED_CLASSES:
                return [int(v) for v in values]
        return None


def _check_finite(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(name, f"contains NaN or Inf (first at index {tuple(int(i) for i in bad)})")


def _finish(x: np.ndarray, y: np.ndarray, **meta) -> ParsedDataset:
    if x.shape[0] == 0:
        raise DataError("x", "the dataset has no rows")
    if x.shape[0] != y.shape[0]:
        raise DataError("y", f"has {y.shape[0]} rows but x has {x.shape[0]}")
    if x.ndim < 2:
        x = x.reshape(-1, 1)
    if y.ndim > 2:
        raise DataError("y", f"must be 1-D or 2-D, got shape {list(y.shape)}")
    _check_finite(x, "x")
    _check_finite(y, "y")
    return ParsedDataset(x=x, y=y, **meta)


def _numeric_x(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise DataError("x", f"must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)  # no second copy of an array already float32


def _numeric_y(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "biu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    raise DataError("y", f"must be numeric, got dtype {arr.dtype}")


def _column_targets(values: list[str], name: str,
                    lines: Sequence[int] | None = None) -> tuple[np.ndarray, list | None]:
    """One target column: numbers stay numbers; text becomes class indices."""
    lines = lines or list(range(2, len(values) + 2))
    empty = [ln for ln, v in zip(lines, values) if v == ""]
    if empty:  # an empty cell would otherwise turn a numeric column into text classes
        raise DataError(f"target.{name}", f"row {empty[0]} is empty")
    try:
        nums = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        classes = sorted(set(values))
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index[v] for v in values], dtype=np.int64), classes
    if not np.isfinite(nums).all():
        row = lines[int(np.argwhere(~np.isfinite(nums))[0][0])]
        raise DataError(f"target.{name}", f"row {row} is NaN or Inf")
    if np.all(nums == np.round(nums)) and np.abs(nums).max() < 2**53:
        return nums.astype(np.int64), None
    return nums.astype(np.float32), None


def parse_inline(x: list, y: list) -> ParsedDataset:
    """Small datasets sent as JSON arrays."""
    try:
        xa = np.asarray(x)
    except ValueError:
        raise DataError("x", "rows must all have the same shape")
    if xa.dtype == object:
        raise DataError("x", "rows must all have the same shape")
    if xa.dtype.kind in "US":
        raise DataError("x", "must be numbers")
    classes = None
    if y and all(isinstance(v, str) for v in y):
        ya, classes = _column_targets([str(v) for v in y], "y")
    else:
        try:
            ya = np.asarray(y)
        except ValueError:
            raise DataError("y", "rows must all have the same shape")
        if ya.dtype == object or ya.dtype.kind in "US":
            raise DataError("y", "must be numbers (all rows the same shape), or all strings for class labels")
        # Whole numbers become integer targets, as in a CSV, so the format does not change the kind.
        if ya.dtype.kind == "f" and np.isfinite(ya).all() and np.all(ya == np.round(ya)):
            ya = ya.astype(np.int64)
        ya = _numeric_y(ya)
    return _finish(_numeric_x(xa), ya, classes=classes)
