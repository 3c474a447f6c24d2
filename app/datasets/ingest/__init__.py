"""Dataset files on local disk -> checked, memory-mappable x.npy and y.npy, streamed in bounded memory.

A .csv is read by pyarrow's multi-threaded CSV reader in blocks (csv_file.py), a .parquet by
row group and an .arrow/.feather/.ipc by record batch (columnar.py), all through one builder
that applies today's checks batch by batch (builder.py); an .npz is unzipped member by member
and copied in chunks (npz_file.py). Memory stays bounded by the blocks, not the file.
"""
import tempfile
from pathlib import Path

import numpy as np

from app.datasets.ingest import columnar, csv_file
from app.datasets.ingest.builder import Staged, build
from app.datasets.ingest.npz_file import build_npz
from app.ml.dataset_files import FileLimits, ParsedDataset
from app.ml.errors import DataError

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow", ".feather": "arrow",
           ".ipc": "arrow", ".npz": "npz"}
ACCEPTED = ".csv (with a header row), .parquet, .arrow/.feather/.ipc (Arrow IPC) or .npz (arrays x and y)"


def format_of(filename: str) -> str:
    """The upload's format by its file name's extension; DataError("file") for any other."""
    suffix = Path(filename.lower()).suffix
    if suffix not in FORMATS:
        raise DataError("file", f"{filename!r}: upload a {ACCEPTED}")
    return FORMATS[suffix]


def stage(*, path: Path, filename: str, targets: list[str], limits: FileLimits, workdir: Path) -> tuple[Staged, str]:
    """Reads and checks the file at ``path`` into ``workdir``; returns the staged files and the format."""
    fmt = format_of(filename)
    if fmt == "npz":
        if targets:
            raise DataError("target", "a .npz upload carries its targets in array y; drop 'target'")
        return build_npz(path, limits, workdir), fmt
    source = {"csv": lambda: csv_file.source(path, targets, limits),
              "parquet": lambda: columnar.parquet_source(path),
              "arrow": lambda: columnar.arrow_source(path)}[fmt]()
    return build(source, targets, limits, workdir), fmt


def load(staged: Staged) -> ParsedDataset:
    """The staged arrays read into memory, as a ParsedDataset (small files: tests, builtins)."""
    x, y = np.load(staged.x_path), np.load(staged.y_path)
    meta = staged.target
    return ParsedDataset(x=x, y=y, feature_names=staged.feature_names, target_names=staged.target_names,
                         classes=meta.classes if meta.classes and isinstance(meta.classes[0], str) else None)


def parse_bytes(data: bytes, filename: str, targets: list[str] = (), limits: FileLimits = FileLimits()) -> ParsedDataset:
    """Parses a file's bytes by its name through the streaming path (tests and small inputs)."""
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        path = Path(tmp) / ("upload" + Path(filename).suffix)
        path.write_bytes(data)
        staged, _ = stage(path=path, filename=filename, targets=list(targets), limits=limits, workdir=Path(tmp))
        return load(staged)


def parse_csv(data: bytes, targets: list[str], limits: FileLimits = FileLimits()) -> ParsedDataset:
    return parse_bytes(data, "upload.csv", targets, limits)


def parse_npz(data: bytes, limits: FileLimits = FileLimits()) -> ParsedDataset:
    return parse_bytes(data, "upload.npz", (), limits)
