"""Parquet and Arrow IPC files -> record batches of at most BATCH_ROWS rows, read as they are needed.

Parquet is read by row group in batches (pyarrow.parquet iter_batches); an Arrow IPC file
(.arrow, .feather version 2, .ipc) is memory-mapped and its batches sliced (a slice is a view),
so a file of any size passes through the builder a bounded batch at a time. Column names are
the file's schema's; rows are counted from 1 in messages (these files have no lines).
"""
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from app.datasets.ingest.builder import Source, explain_by_row
from app.ml.errors import DataError

BATCH_ROWS = 65_536


def parquet_source(path: Path) -> Source:
    try:
        names = pq.ParquetFile(path).schema_arrow.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise _unreadable("Parquet", exc)

    def batches(columns: list[int] | None) -> Iterator[pa.RecordBatch]:
        wanted = None if columns is None else [names[j] for j in columns]
        try:
            with pq.ParquetFile(path) as f:
                yield from f.iter_batches(batch_size=BATCH_ROWS, columns=wanted, use_threads=True)
        except (pa.ArrowInvalid, OSError) as exc:
            raise _unreadable("Parquet", exc)

    return Source(header=[str(n) for n in names], batches=batches, explain=explain_by_row,
                  no_rows="the Parquet file has no rows")


def arrow_source(path: Path) -> Source:
    with _mapped(path) as mapped:
        names = _ipc_reader(mapped).schema.names

    def batches(columns: list[int] | None) -> Iterator[pa.RecordBatch]:
        with _mapped(path) as mapped:
            try:
                yield from _slices(_ipc_reader(mapped), columns)
            except (pa.ArrowInvalid, OSError) as exc:
                raise _unreadable("Arrow IPC", exc)

    return Source(header=[str(n) for n in names], batches=batches, explain=explain_by_row,
                  no_rows="the Arrow file has no rows")


def _mapped(path: Path):
    try:
        return pa.memory_map(str(path), "r")
    except OSError as exc:
        raise _unreadable("Arrow IPC", exc)


def _ipc_reader(mapped):
    """The file's reader: the random-access format (.arrow, .feather v2), else the stream format."""
    try:
        return ipc.open_file(mapped)
    except pa.ArrowInvalid:
        mapped.seek(0)
    try:
        return ipc.open_stream(mapped)
    except pa.ArrowInvalid as exc:
        raise _unreadable("Arrow IPC", exc)


def _slices(reader, columns: list[int] | None) -> Iterator[pa.RecordBatch]:
    """The file's batches cut to BATCH_ROWS rows (views of the mapped file, not copies)."""
    count = getattr(reader, "num_record_batches", None)
    whole = (reader.get_batch(i) for i in range(count)) if count is not None else iter(reader)
    for batch in whole:
        if columns is not None:
            batch = batch.select(columns)
        for lo in range(0, batch.num_rows, BATCH_ROWS):
            yield batch.slice(lo, BATCH_ROWS)


def _unreadable(kind: str, exc) -> DataError:
    return DataError("file", f"not a valid {kind} file: {exc}")
