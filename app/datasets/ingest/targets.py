"""Target columns as they stream in: numbers kept as float64, text labels numbered as they appear,
then, once every row is in, y written as the dataset keeps it.

The rules are today's: a column of numbers stays numbers (int64 when every value is whole and
under 2**53, else float32); a column with any text is class labels, numbered in sorted order;
several target columns must all be numbers. Memory is bounded by the labels, not the rows.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.datasets.ingest.npy import NpyWriter, chunk_rows
from app.ml.dataset_files import MAX_LISTED_CLASSES  # integer labels listed up to this many
from app.ml.errors import DataError

# Distinct text labels one target column may have: each is listed in the dataset's record.
MAX_TEXT_CLASSES = 100_000
MAX_LABEL_CHARS = 131_072  # as long as a cell the csv module reads; labels are stored as text


class BadRow(Exception):
    """A cell found bad at a row (0-based, over the whole file): the reader says where that is."""

    def __init__(self, field: str, row: int, text: str):
        self.field, self.row, self.text = field, row, text  # text holds "{where}" for the row's place


class LateText(Exception):
    """Text after rows of numbers: the column's earlier cells must be read again as text."""


class TargetColumn:
    """One target column's cells, appended batch by batch to a raw file under ``workdir``."""

    def __init__(self, name: str, path: Path, *, text_allowed: bool, force_text: bool = False):
        self.name, self.path, self.text_allowed = name, Path(path), text_allowed
        self.field = f"target.{name}"
        self.mode = "text" if force_text else None  # None until the first batch: "number" | "text"
        self.integral = True
        self.labels: dict[str, int] = {}
        self.rows = 0
        self._file = open(self.path, "wb")

    def add(self, cells: pa.Array, start: int) -> None:
        """Appends a batch's cells (rows ``start``...): numbers, or text to be read as numbers or labels."""
        if pa.types.is_string(cells.type) or pa.types.is_large_string(cells.type):
            self._add_text(pc.utf8_trim_whitespace(cells), start)
        elif pa.types.is_integer(cells.type) or pa.types.is_floating(cells.type) or pa.types.is_boolean(cells.type):
            self._check_nulls(cells, start)
            self._add_numbers(cells.cast(pa.float64()).to_numpy(zero_copy_only=False), start)
        else:
            raise DataError(self.field, f"must be numbers or text labels, not {cells.type}")

    def _check_nulls(self, cells: pa.Array, start: int) -> None:
        if cells.null_count:
            first = int(np.flatnonzero(cells.is_null().to_numpy(zero_copy_only=False))[0])
            raise BadRow(self.field, start + first, "{where} is empty")

    def _add_text(self, cells: pa.Array, start: int) -> None:
        self._check_nulls(cells, start)
        empty = pc.equal(cells, "").to_numpy(zero_copy_only=False)
        if empty.any():  # an empty cell would otherwise turn a numeric column into text classes
            raise BadRow(self.field, start + int(np.flatnonzero(empty)[0]), "{where} is empty")
        if self.mode != "text":
            try:
                numbers = pc.cast(cells, pa.float64()).to_numpy(zero_copy_only=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                numbers = None
            if numbers is not None:
                return self._add_numbers(numbers, start)
            if not self.text_allowed:
                raise DataError(self.field, "multi-column targets must be numeric")
            if self.mode == "number" and self.rows:
                raise LateText(self.name)
            self.mode = "text"
        self._add_labels(cells, start)

    def _add_numbers(self, values: np.ndarray, start: int) -> None:
        self.mode = "number"
        bad = ~np.isfinite(values)
        if bad.any():
            raise BadRow(self.field, start + int(np.flatnonzero(bad)[0]), "{where} is NaN or Inf")
        self.integral = self.integral and bool(np.all(values == np.round(values))) and \
            bool(np.abs(values).max(initial=0) < 2**53)
        self._write(values.astype(np.float64, copy=False))

    def _add_labels(self, cells: pa.Array, start: int) -> None:
        encoded = pc.dictionary_encode(cells).combine_chunks() if isinstance(cells, pa.ChunkedArray) \
            else pc.dictionary_encode(cells)
        ids = np.empty(len(encoded.dictionary), dtype=np.int64)
        for i, label in enumerate(encoded.dictionary.to_pylist()):
            ids[i] = self._label_id(label, start, encoded, i)
        self._write(ids[encoded.indices.to_numpy(zero_copy_only=False)])

    def _label_id(self, label: str, start: int, encoded, index: int) -> int:
        found = self.labels.get(label)
        if found is not None:
            return found
        problem = None
        if "\x00" in label:  # PostgreSQL cannot store a NUL in the record's class list
            problem = ("file", "the file contains a NUL character ({where})")
        elif len(label) > MAX_LABEL_CHARS:
            problem = (self.field, f"{{where}} has a label over the limit of {MAX_LABEL_CHARS:,} characters")
        elif len(self.labels) >= MAX_TEXT_CLASSES:
            problem = (self.field, f"{{where}} brings the column over {MAX_TEXT_CLASSES:,} distinct "
                                   "text labels; a target of that many classes is not a label")
        if problem is not None:  # only then is the row looked for
            row = start + int(np.flatnonzero(encoded.indices.to_numpy(zero_copy_only=False) == index)[0])
            raise BadRow(problem[0], row, problem[1])
        self.labels[label] = len(self.labels)
        return self.labels[label]

    def _write(self, values: np.ndarray) -> None:
        self._file.write(memoryview(np.ascontiguousarray(values)).cast("B"))
        self.rows += len(values)

    def close(self) -> None:
        self._file.close()

    def chunks(self, step: int):
        """The column's values in order, ``step`` at a time: float64 numbers or int64 provisional label ids."""
        dtype = np.int64 if self.mode == "text" else np.float64
        with open(self.path, "rb") as f:
            for _ in range(0, self.rows, step):
                yield np.fromfile(f, dtype=dtype, count=step)

    def classes(self) -> list[str] | None:
        return sorted(self.labels) if self.mode == "text" else None

    def ranks(self) -> np.ndarray:
        """Provisional label id -> its index among the sorted labels."""
        order = sorted(self.labels, key=str)
        rank = np.empty(len(order), dtype=np.int64)
        for position, label in enumerate(order):
            rank[self.labels[label]] = position
        return rank


@dataclass
class TargetMeta:
    shape: tuple
    kind: str  # integer | float
    minimum: float
    maximum: float
    classes: list | None


class TargetRange:
    """A y's range and, for integer labels in one column, its classes, block by block as y is written."""

    def __init__(self, list_classes: bool):
        self.low, self.high = np.inf, -np.inf
        self.listed: set | None = set() if list_classes else None

    def add(self, block: np.ndarray) -> None:
        self.low, self.high = min(self.low, float(block.min())), max(self.high, float(block.max()))
        if self.listed is not None:
            self.listed |= set(np.unique(block).tolist())
            self.listed = self.listed if len(self.listed) <= MAX_LISTED_CLASSES else None

    def classes(self) -> list | None:
        return sorted(int(v) for v in self.listed) if self.listed is not None else None


def write_y(columns: list[TargetColumn], path: Path) -> TargetMeta:
    """Writes y.npy from the columns, in chunks: (rows,) for one column, (rows, k) for several."""
    for c in columns:
        c.close()
    text = columns[0].mode == "text"
    integer = text or all(c.integral for c in columns)
    dtype = np.int64 if integer else np.float32
    rank = columns[0].ranks() if text else None
    writer = NpyWriter(path, dtype, () if len(columns) == 1 else (len(columns),))
    seen = TargetRange(list_classes=integer and len(columns) == 1 and not text)
    step = chunk_rows((len(columns),), 8)
    for parts in zip(*(c.chunks(step) for c in columns)):
        block = rank[parts[0]] if text else (parts[0] if len(parts) == 1 else np.stack(parts, axis=1))
        block = block.astype(dtype)
        writer.append(block)
        seen.add(block)
    shape = writer.close()
    return TargetMeta(shape=shape[1:], kind="integer" if integer else "float", minimum=seen.low,
                      maximum=seen.high, classes=columns[0].classes() if text else seen.classes())
