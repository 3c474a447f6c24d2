"""Dataset files -> arrays: a CSV, NPZ or JSON upload becomes a ParsedDataset.

Uploads are normalized to two arrays: ``x`` (float32, shape (rows, *features))
and ``y`` (int64 class labels or float32 values, shape (rows,) or (rows, k)). A builtin
(app/ml/builtin_datasets.py) becomes the same ParsedDataset, so both are stored alike.
"""
import csv
import hashlib
import io
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.ml.errors import DataError
from app.ml.npz_sizes import check_unpacked_size

MAX_LISTED_CLASSES = 1000
FLOAT32 = 4


@dataclass(frozen=True)
class FileLimits:
    """What one upload may unpack to (the API's MAX_DATASET_BYTES, MAX_CSV_COLUMNS).

    Checked as the file is read, so a small file cannot become a large dataset: an .npz's
    arrays by their declared sizes (app/ml/npz_sizes.py), a CSV's cells at 4 bytes each as
    they are read. A CSV cell is also held to the csv module's 131,072 characters."""

    max_bytes: int = 1024 * 1024 * 1024
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


def parse_npz(data: bytes, limits: FileLimits = FileLimits()) -> ParsedDataset:
    """Reads arrays ``x`` and ``y``, once their unpacked size is known to be in the limit;
    pickled objects are refused, never loaded."""
    check_unpacked_size(data, limits.max_bytes)
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


def parse_csv(data: bytes, targets: list[str], limits: FileLimits = FileLimits()) -> ParsedDataset:
    """Reads a CSV with a header row; ``targets`` names the target column(s).

    One pass, row by row: the features become float32 as they are read (4 bytes a cell, not
    a Python string's 50 or more), so the limits hold while the file is read, not after."""
    reader = csv.reader(_csv_lines(data))
    header = _header(reader, limits)
    _check_targets_named(header, targets)
    features = [j for j, h in enumerate(header) if h not in targets]
    x, lines, cells = _read_rows(reader, header, features, [header.index(t) for t in targets], limits)
    x = np.frombuffer(x, dtype=np.float32).reshape(len(lines), len(features))
    names = [header[j] for j in features]
    _check_finite_cells(x, names, lines)
    if len(targets) == 1:
        y, classes = _column_targets(cells[0], targets[0], lines)
    else:
        parts = [_column_targets(c, t, lines) for c, t in zip(cells, targets)]
        for t, (_, cls) in zip(targets, parts):
            if cls is not None:
                raise DataError(f"target.{t}", "multi-column targets must be numeric")
        y = np.stack([p[0].astype(np.float64) for p in parts], axis=1)
        y = y.astype(np.int64) if all(p[0].dtype.kind == "i" for p in parts) else y.astype(np.float32)
        classes = None
    return _finish(x, y, feature_names=names, target_names=list(targets), classes=classes)


def _csv_lines(data: bytes) -> io.TextIOWrapper:
    """The CSV's lines, decoded as they are read: the whole text as a str (and a StringIO of
    it, 4 bytes a character) added 500 MB to a 105 MB upload."""
    nul = data.find(b"\x00")
    if nul >= 0:  # it would reach the stored names and labels, which PostgreSQL cannot store
        line = data.count(b"\n", 0, nul) + 1
        raise DataError("file", f"the CSV contains a NUL character (line {line})")
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")


def _header(reader, limits: FileLimits) -> list[str]:
    """The first non-blank row, held to the column limit before anything counts its names."""
    try:
        row = next((r for r in reader if r), None)
    except csv.Error as exc:
        raise _csv_error(exc, reader.line_num)
    except UnicodeDecodeError:
        raise DataError("file", "the CSV is not UTF-8 text")
    if row is None:
        raise DataError("file", "the CSV needs a header row and at least one data row")
    if len(row) > limits.max_columns:
        raise DataError("file", f"the header has {len(row):,} columns, over the limit of "
                                f"{limits.max_columns:,} (MAX_CSV_COLUMNS)")
    header = [h.strip() for h in row]
    repeated = sorted(h for h, n in Counter(header).items() if n > 1)  # linear: a Counter, not count()
    if repeated:  # columns are looked up by name: a repeat would silently duplicate one
        raise DataError("file", f"the header repeats column name(s): {', '.join(map(repr, repeated[:10]))}")
    return header


def _csv_error(exc: csv.Error, line: int) -> DataError:
    if "field larger than field limit" in str(exc):
        return DataError("file", f"line {line} of the CSV has a cell over the limit of "
                                 f"{csv.field_size_limit():,} characters")
    return DataError("file", f"line {line} of the CSV: {exc}")


def _check_targets_named(header: list[str], targets: list[str]) -> None:
    shown = ", ".join(header[:50]) + (", ..." if len(header) > 50 else "")
    if not targets:
        raise DataError("target", "name the target column(s); the header has: " + shown)
    names = set(header)
    for t in targets:
        if t not in names:
            raise DataError("target", f"column {t!r} is not in the header ({shown})")
    if names <= set(targets):
        raise DataError("target", "every column is a target; no feature columns are left")


def _read_rows(reader, header: list[str], features: list[int], targets: list[int],
               limits: FileLimits) -> tuple[array, array, list[list[str]]]:
    """(the features as float32 bytes, each row's line number, each target column's cells)."""
    x, lines, cells = array("f"), array("q"), [[] for _ in targets]
    max_rows = limits.max_bytes // (FLOAT32 * max(len(header), 1))
    try:
        for row in reader:  # a non-UTF-8 byte raises UnicodeDecodeError here, as its line is read
            if not row:
                continue  # blank lines are skipped; the line numbers stay the file's
            if len(row) != len(header):
                raise DataError("file", f"row {reader.line_num} has {len(row)} fields, the header has {len(header)}")
            if len(lines) >= max_rows:
                raise DataError("file", f"the CSV has over {max_rows:,} rows of {len(header):,} columns, over "
                                        f"the limit of {limits.max_bytes:,} bytes as float32 (MAX_DATASET_BYTES)")
            try:
                x.extend([float(row[j]) for j in features])
            except ValueError:
                raise _not_numeric(row, features, header, reader.line_num)
            for column, j in zip(cells, targets):
                column.append(row[j].strip())
            lines.append(reader.line_num)
    except csv.Error as exc:  # a cell over the csv module's field limit, or a stray quote
        raise _csv_error(exc, reader.line_num)
    except UnicodeDecodeError:
        raise DataError("file", "the CSV is not UTF-8 text")
    if not lines:
        raise DataError("file", "the CSV needs a header row and at least one data row")
    return x, lines, cells


def _not_numeric(row: list[str], features: list[int], header: list[str], line: int) -> DataError:
    for j in features:
        try:
            float(row[j])
        except ValueError:
            return DataError(f"column.{header[j]}", f"is not numeric (row {line}: {row[j].strip()!r})")
    return DataError("file", f"row {line} is not numeric")


def _check_finite_cells(x: np.ndarray, names: list[str], lines: array) -> None:
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        i, j = bad[np.lexsort((bad[:, 0], bad[:, 1]))[0]]  # the first column with one, then its first row
        raise DataError(f"column.{names[j]}", f"row {lines[i]} is NaN or Inf")


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
