"""A CSV on disk -> record batches, read by pyarrow's multi-threaded streaming reader in blocks.

The header is read first with the csv module (today's rules: the first non-blank row, names
stripped, a UTF-8 BOM dropped); pyarrow then reads the rows after it in blocks of BLOCK_BYTES,
features as float64 (cast to float32 as they are stored, exactly as Python's float() then
float32 did) and target columns as text. When pyarrow refuses a block (a ragged row, a cell
that is not a number, bytes that are not UTF-8), the file is read once more the slow way, row
by row with the csv module, to report the first bad row by its line as today's reader did.
That costs time only on the way to an error.
"""
import csv
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from app.datasets.ingest.builder import Source
from app.datasets.ingest.targets import BadRow
from app.ml.dataset_files import FileLimits
from app.ml.errors import DataError

# One block parsed per thread. Memory is a few blocks ahead, whatever the file; the API's peak
# grew by ~100 MB with 1 MiB blocks (the reader's readahead, pyarrow's pool) and more with 4 MiB.
BLOCK_BYTES = 1 << 20
NO_ROWS = "the CSV needs a header row and at least one data row"


def source(path: Path, targets: list[str], limits: FileLimits) -> Source:
    raw, header_lines = _header(path)
    header = [h.strip() for h in raw]
    if len(header) > limits.max_columns:  # before anything else counts the names
        raise DataError("file", f"the header has {len(header):,} columns, over the limit of "
                                f"{limits.max_columns:,} (MAX_CSV_COLUMNS)")
    feature_names = {f"c{j}" for j, h in enumerate(header) if h not in targets}

    def batches(columns: list[int] | None) -> Iterator[pa.RecordBatch]:
        return _batches(path, header, header_lines, feature_names, columns)

    def explain(bad: BadRow) -> DataError:
        return _explain(path, header_lines, bad)

    return Source(header=header, batches=batches, explain=explain, no_rows=NO_ROWS)


def _text(path: Path):
    return open(path, encoding="utf-8-sig", newline="")


def _header(path: Path) -> tuple[list[str], int]:
    """The first non-blank row and the line it ends on."""
    with _text(path) as f:
        reader = csv.reader(f)
        try:
            row = next((r for r in reader if r), None)
        except csv.Error as exc:
            raise _csv_error(exc, reader.line_num)
        except UnicodeDecodeError:
            raise DataError("file", "the CSV is not UTF-8 text")
        if row is None:
            raise DataError("file", NO_ROWS)
        if any("\x00" in cell for cell in row):  # it would reach the stored names, which PostgreSQL cannot store
            raise DataError("file", f"the CSV contains a NUL character (line {reader.line_num})")
        return row, reader.line_num


def _batches(path: Path, header: list[str], skip: int, features: set[str],
             columns: list[int] | None) -> Iterator[pa.RecordBatch]:
    names = [f"c{j}" for j in range(len(header))]
    include = None if columns is None else [names[j] for j in columns]
    types = {n: (pa.float64() if n in features else pa.string()) for n in names}
    read = pa_csv.ReadOptions(column_names=names, skip_rows=skip, block_size=BLOCK_BYTES, use_threads=True)
    parse = pa_csv.ParseOptions(newlines_in_values=True)  # a quoted cell may hold a line break, as csv allows
    convert = pa_csv.ConvertOptions(column_types=types, include_columns=include, null_values=[],
                                    strings_can_be_null=False, quoted_strings_can_be_null=False)
    try:
        with pa_csv.open_csv(pa.OSFile(str(path)), read_options=read, parse_options=parse, convert_options=convert) as reader:
            yield from reader
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            return
        raise _first_bad_row(path, header, skip, features) or DataError("file", f"the CSV cannot be read: {exc}")


def _csv_error(exc: csv.Error, line: int) -> DataError:
    if "field larger than field limit" in str(exc):
        return DataError("file", f"line {line} of the CSV has a cell over the limit of "
                                 f"{csv.field_size_limit():,} characters")
    return DataError("file", f"line {line} of the CSV: {exc}")


def _data_rows(reader, skip: int):
    """(line, row) of every non-blank row after the header, as the csv module reads them."""
    for row in reader:
        if row and reader.line_num > skip:
            yield reader.line_num, row


def _explain(path: Path, skip: int, bad: BadRow) -> DataError:
    """The bad cell's error at its line, counted again row by row; or a csv error met first."""
    with _text(path) as f:
        reader = csv.reader(f)
        try:
            for i, (line, _) in enumerate(_data_rows(reader, skip)):
                if i == bad.row:
                    return DataError(bad.field, bad.text.format(where=f"row {line:,}"))
        except csv.Error as exc:
            return _csv_error(exc, reader.line_num)
    return DataError(bad.field, bad.text.format(where=f"data row {bad.row + 1:,}"))


def _first_bad_row(path: Path, header: list[str], skip: int, features: set[str]) -> DataError | None:
    """Today's row-by-row checks, run once pyarrow has refused a block: the first bad row's error."""
    width = len(header)
    with _text(path) as f:
        reader = csv.reader(f)
        try:
            for line, row in _data_rows(reader, skip):
                if len(row) != width:
                    return DataError("file", f"row {line:,} has {len(row)} fields, the header has {width}")
                for j, cell in enumerate(row):
                    if f"c{j}" in features and not _is_number(cell):
                        return DataError(f"column.{header[j]}", f"is not numeric (row {line:,}: {cell.strip()!r})")
        except csv.Error as exc:  # a cell over the csv module's field limit, or a stray quote
            return _csv_error(exc, reader.line_num)
        except UnicodeDecodeError:
            return DataError("file", "the CSV is not UTF-8 text")
    return None


def _is_number(cell: str) -> bool:
    """As pyarrow reads a float: Python's float() less the forms it alone takes ("1_000")."""
    try:
        float(cell)
    except ValueError:
        return False
    return "_" not in cell
