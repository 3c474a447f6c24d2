"""Dataset files -> arrays: a CSV, NPZ or JSON upload becomes a ParsedDataset.

Uploads are normalized to two arrays: ``x`` (float32, shape (rows, *features))
and ``y`` (int64 class labels or float32 values, shape (rows,) or (rows, k)). A builtin
(app/ml/builtin_datasets.py) becomes the same ParsedDataset, so both are stored alike.
"""
import csv
import hashlib
import io
import math
from dataclasses import dataclass, field

import numpy as np

from app.ml.errors import DataError

MAX_LISTED_CLASSES = 1000


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
            h.update(np.ascontiguousarray(arr).tobytes())
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
    return arr.astype(np.float32)


def _numeric_y(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "biu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    raise DataError("y", f"must be numeric, got dtype {arr.dtype}")


def parse_npz(data: bytes) -> ParsedDataset:
    """Reads arrays ``x`` and ``y``; pickled objects are refused, never loaded."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            missing = {"x", "y"} - set(npz.files)
            if missing:
                raise DataError("file", f"the .npz needs arrays x and y; missing: {sorted(missing)}")
            x, y = npz["x"], npz["y"]
            # NpzFile hands back raw bytes for a member that is not a .npy array
            for name, arr in (("x", x), ("y", y)):
                if not isinstance(arr, np.ndarray):
                    raise DataError("file", f"{name} in the .npz is not a .npy array")
    except DataError:
        raise
    except ValueError as exc:
        raise DataError("file", f"not a valid .npz of numeric arrays: {exc}")
    except Exception as exc:  # zipfile/np errors vary by corruption
        raise DataError("file", f"not a valid .npz file: {exc}")
    return _finish(_numeric_x(x), _numeric_y(y))


def _column_targets(values: list[str], name: str,
                    lines: list[int] | None = None) -> tuple[np.ndarray, list | None]:
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


def parse_csv(data: bytes, targets: list[str]) -> ParsedDataset:
    """Reads a CSV with a header row; ``targets`` names the target column(s)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("file", "the CSV is not UTF-8 text")
    reader = csv.reader(io.StringIO(text))
    numbered = [(reader.line_num, r) for r in reader if r]  # blank lines skipped, numbers kept
    if len(numbered) < 2:
        raise DataError("file", "the CSV needs a header row and at least one data row")
    header = [h.strip() for h in numbered[0][1]]
    lines, body = [n for n, _ in numbered[1:]], [r for _, r in numbered[1:]]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:  # columns are looked up by name: a repeat would silently duplicate one
        raise DataError("file", f"the header repeats column name(s): {', '.join(map(repr, repeated))}")
    for line, r in zip(lines, body):
        if len(r) != len(header):
            raise DataError("file", f"row {line} has {len(r)} fields, the header has {len(header)}")
    if not targets:
        raise DataError("target", "name the target column(s); the header has: " + ", ".join(header))
    for t in targets:
        if t not in header:
            raise DataError("target", f"column {t!r} is not in the header ({', '.join(header)})")
    features = [h for h in header if h not in targets]
    if not features:
        raise DataError("target", "every column is a target; no feature columns are left")
    cols = {h: [r[j].strip() for r in body] for j, h in enumerate(header)}
    x = np.empty((len(body), len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        for i, v in enumerate(cols[name]):
            try:
                f = float(v)
            except ValueError:
                raise DataError(f"column.{name}", f"is not numeric (row {lines[i]}: {v!r})")
            if not math.isfinite(f):
                raise DataError(f"column.{name}", f"row {lines[i]} is NaN or Inf")
            x[i, j] = f
    if len(targets) == 1:
        y, classes = _column_targets(cols[targets[0]], targets[0], lines)
    else:
        parts = [_column_targets(cols[t], t, lines) for t in targets]
        for t, (_, cls) in zip(targets, parts):
            if cls is not None:
                raise DataError(f"target.{t}", "multi-column targets must be numeric")
        y = np.stack([p[0].astype(np.float64) for p in parts], axis=1)
        y = y.astype(np.int64) if all(p[0].dtype.kind == "i" for p in parts) else y.astype(np.float32)
        classes = None
    return _finish(x, y, feature_names=features, target_names=list(targets), classes=classes)


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
