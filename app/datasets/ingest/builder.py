"""Record batches of named columns (from a CSV, Parquet or Arrow file) -> a dataset's x.npy and y.npy.

Every check of a table's upload lives here, applied batch by batch as rows stream through: the
header (column limit, repeated names, the targets named), numeric features, NaN/Inf, empty
target cells, the size limit. A bad cell is reported at its row as the reader places it ("row
7,345,201" is a CSV's line), and the caller removes the half-written files.
"""
import difflib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.datasets.ingest.npy import NpyWriter, digest
from app.datasets.ingest.targets import BadRow, LateText, TargetColumn, TargetMeta, write_y
from app.ml.dataset_files import FileLimits
from app.ml.errors import DataError

FLOAT32 = 4


@dataclass
class Staged:
    """A checked dataset's two files on local disk, and what its record says of it."""

    x_path: Path
    y_path: Path
    sha256: str
    rows: int
    feature_shape: tuple
    target: TargetMeta
    feature_names: list[str] | None = None
    target_names: list[str] | None = None

    @property
    def nbytes(self) -> int:
        return self.x_path.stat().st_size + self.y_path.stat().st_size


@dataclass
class Source:
    """A table file as the builder reads it: its header, its batches, and where a row is."""

    header: list[str]
    batches: Callable[[list[int] | None], Iterator[pa.RecordBatch]]  # None: every column
    # A bad cell's error: its row (0-based) placed as the reader counts ("row 12": a CSV's line),
    # or a problem the reader finds first on the way there (a CSV cell over the csv module's limit).
    explain: Callable[[BadRow], DataError]
    no_rows: str  # the message for a file without data rows


def check_header(header: list[str], targets: list[str], limits: FileLimits) -> None:
    """The header's column limit, repeated names and the targets named, before any row is read."""
    if len(header) > limits.max_columns:
        raise DataError("file", f"the header has {len(header):,} columns, over the limit of "
                                f"{limits.max_columns:,} (MAX_CSV_COLUMNS)")
    repeated = sorted(h for h, n in Counter(header).items() if n > 1)
    if repeated:  # columns are looked up by name: a repeat would silently duplicate one
        raise DataError("file", f"the header repeats column name(s): {', '.join(map(repr, repeated[:10]))}")
    if any("\x00" in h for h in header):
        raise DataError("file", "the header contains a NUL character (line 1)")
    shown = ", ".join(header[:50]) + (", ..." if len(header) > 50 else "")
    if not targets:
        raise DataError("target", "name the target column(s); the header has: " + shown)
    names = set(header)
    for t in targets:
        if t not in names:
            close = difflib.get_close_matches(t, header, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataError("target", f"column {t!r} is not in the header ({shown}){hint}")
    if names <= set(targets):
        raise DataError("target", "every column is a target; no feature columns are left")


def build(source: Source, targets: list[str], limits: FileLimits, workdir: Path) -> Staged:
    """Streams the source's batches into x.npy and y.npy under ``workdir``; raises DataError naming the field."""
    header = source.header
    check_header(header, targets, limits)
    try:
        return _Build(source, targets, limits, Path(workdir)).run()
    except BadRow as bad:
        raise source.explain(bad) from None


def explain_by_row(bad: BadRow) -> DataError:
    """Rows counted from 1 (a Parquet or Arrow file has no lines)."""
    return DataError(bad.field, bad.text.format(where=f"row {bad.row + 1:,}"))


class _Build:
    def __init__(self, source: Source, targets: list[str], limits: FileLimits, workdir: Path):
        self.source, self.targets, self.workdir = source, targets, workdir
        header = source.header
        self.features = [j for j, h in enumerate(header) if h not in targets]
        self.target_idx = [header.index(t) for t in targets]
        self.max_rows = limits.max_bytes // (FLOAT32 * max(len(header), 1))
        self.limits = limits
        self.x = NpyWriter(workdir / "x.npy", np.float32, (len(self.features),))
        self.columns = [self._column(i) for i in range(len(targets))]
        self.late: list[int] = []  # target columns that met text after numbers: read again as text

    def _column(self, i: int, force_text: bool = False) -> TargetColumn:
        return TargetColumn(self.targets[i], self.workdir / f"target{i}.raw",
                            text_allowed=len(self.targets) == 1, force_text=force_text)

    def run(self) -> Staged:
        for batch in self.source.batches(None):
            self._add(batch)
        if self.x.rows == 0:
            self.x.discard()
            raise DataError("file", self.source.no_rows)
        for i in self.late:
            self._reread_as_text(i)
        shape = self.x.close()
        y_path = self.workdir / "y.npy"
        meta = write_y(self.columns, y_path)
        names = self.source.header
        return Staged(x_path=self.x.path, y_path=y_path, sha256=digest(self.x.path, y_path), rows=shape[0],
                      feature_shape=shape[1:], target=meta, feature_names=[names[j] for j in self.features],
                      target_names=list(self.targets))

    def _add(self, batch: pa.RecordBatch) -> None:
        start, n = self.x.rows, batch.num_rows
        if start + n > self.max_rows:
            raise DataError("file", f"the file has over {self.max_rows:,} rows of {len(self.source.header):,} "
                                    f"columns, over the limit of {self.limits.max_bytes:,} bytes as float32 "
                                    "(MAX_DATASET_BYTES)")
        # Column by column into (features, rows), then one transpose: twice as fast as strided stores.
        columns = np.empty((len(self.features), n), dtype=np.float32)
        for k, j in enumerate(self.features):
            columns[k] = _feature(batch.column(j), self.source.header[j], start)
        bad = ~np.isfinite(columns)
        if bad.any():  # the first column with one, then its first row
            k = int(np.flatnonzero(bad.any(axis=1))[0])
            raise BadRow(f"column.{self.source.header[self.features[k]]}", start + int(np.flatnonzero(bad[k])[0]),
                         "{where} is NaN or Inf")
        for i, (column, j) in enumerate(zip(self.columns, self.target_idx)):
            if i in self.late:
                continue
            try:
                column.add(batch.column(j), start)
            except LateText:
                self.late.append(i)
        self.x.append(columns.T)  # (rows, features)

    def _reread_as_text(self, i: int) -> None:
        """A column whose text came after rows of numbers: every cell again, as class labels."""
        column = self.columns[i] = self._column(i, force_text=True)
        start = 0
        for batch in self.source.batches([self.target_idx[i]]):
            column.add(batch.column(0), start)
            start += batch.num_rows


def _feature(cells: pa.Array, name: str, start: int) -> np.ndarray:
    """One feature column of a batch as float64 (CSV columns already are: no copy)."""
    field = f"column.{name}"
    if cells.null_count:
        first = int(np.flatnonzero(cells.is_null().to_numpy(zero_copy_only=False))[0])
        raise BadRow(field, start + first, "is not numeric ({where}: empty)")
    kind = cells.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind) \
            or pa.types.is_decimal(kind):
        return cells.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        trimmed = pc.utf8_trim_whitespace(cells)
        try:
            return pc.cast(trimmed, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            row, value = _first_not_number(trimmed)
            raise BadRow(field, start + row, f"is not numeric ({{where}}: {value!r})") from None
    raise DataError(field, f"is not numeric: a column of {kind}")


def _first_not_number(cells: pa.Array) -> tuple[int, str]:
    """The first cell pyarrow cannot read as a number (the error path only: cell by cell)."""
    for i, value in enumerate(cells.to_pylist()):
        try:
            pc.cast(pa.array([value]), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return i, value
    return 0, ""
