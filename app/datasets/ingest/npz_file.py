"""An .npz on disk (arrays x and y) -> a dataset's x.npy and y.npy, in bounded memory.

Each array's unpacked size is checked first from its declared sizes (app/ml/npz_sizes.py);
then its member is unzipped to a file, memory-mapped (a pickled object array cannot be: it is
refused, never loaded), and copied in chunks at the dtype the dataset keeps (float32 x; int64
or float32 y), each chunk checked for NaN/Inf as it passes.
"""
import shutil
import zipfile
from pathlib import Path

import numpy as np

from app.datasets.ingest.builder import Staged
from app.datasets.ingest.npy import NpyWriter, digest, iter_rows, npy_layout
from app.datasets.ingest.targets import TargetMeta, TargetRange
from app.ml.dataset_files import FileLimits
from app.ml.errors import DataError
from app.ml.npz_sizes import check_unpacked_size


def build_npz(path: Path, limits: FileLimits, workdir: Path) -> Staged:
    check_unpacked_size(Path(path), limits.max_bytes)
    x, y = (_member(path, name, Path(workdir)) for name in ("x", "y"))
    if x.dtype.kind not in "biuf":
        raise DataError("x", f"must be numeric, got dtype {x.dtype}")
    if y.dtype.kind not in "biuf":
        raise DataError("y", f"must be numeric, got dtype {y.dtype}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise DataError("x", "the dataset has no rows")
    if y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise DataError("y", f"has {y.shape[0] if y.ndim else 0} rows but x has {x.shape[0]}")
    if y.ndim > 2:
        raise DataError("y", f"must be 1-D or 2-D, got shape {list(y.shape)}")
    x_path, y_path = Path(workdir) / "x.npy", Path(workdir) / "y.npy"
    feature_shape = _copy(x, x_path, np.float32, "x")
    kind = "integer" if y.dtype.kind in "biu" else "float"
    meta = _copy_y(y, y_path, np.int64 if kind == "integer" else np.float32, kind)
    return Staged(x_path=x_path, y_path=y_path, sha256=digest(x_path, y_path), rows=int(x.shape[0]),
                  feature_shape=feature_shape, target=meta)


def _member(path: Path, name: str, workdir: Path) -> np.ndarray:
    """Array ``name`` of the archive, unzipped to ``workdir`` and memory-mapped."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
            member = f"{name}.npy" if f"{name}.npy" in members else name if name in members else None
            if member is None:
                files = sorted(m[:-4] if m.endswith(".npy") else m for m in members)
                missing = sorted({"x", "y"} - set(files))
                raise DataError("file", f"the .npz needs arrays x and y; missing: {missing}")
            target = workdir / f"upload-{name}.npy"
            with archive.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as exc:
        raise DataError("file", f"not a valid .npz file: {exc}")
    return _open(target, name)


class _Member:
    """An unzipped member's header: its shape and dtype, its rows read in chunks when copied."""

    def __init__(self, path: Path, shape: tuple, dtype: np.dtype):
        self.path, self.shape, self.dtype, self.ndim = path, tuple(shape), dtype, len(shape)


def _open(target: Path, name: str) -> _Member:
    try:
        shape, dtype, _, _ = npy_layout(target)
    except ValueError:  # NpzFile would hand back raw bytes for it
        raise DataError("file", f"{name} in the .npz is not a .npy array")
    except Exception as exc:  # a truncated or corrupt header
        raise DataError("file", f"not a valid .npz file: {exc}")
    if dtype.hasobject:  # a pickle: refused, never loaded
        raise DataError("file", f"not a valid .npz of numeric arrays: {name} holds Python objects")
    return _Member(target, shape, dtype)


def _blocks(member: _Member, reshape: tuple | None = None):
    try:
        for lo, block in iter_rows(member.path):
            yield lo, (block.reshape(reshape) if reshape else block)
    except ValueError as exc:
        raise DataError("file", f"not a valid .npz file: {exc}")


def _copy(member: _Member, path: Path, dtype, field: str) -> tuple:
    """Copies the member to a .npy at ``dtype`` in chunks, refusing NaN/Inf; returns the row shape."""
    row_shape = member.shape[1:] if member.ndim >= 2 else (1,)
    writer = NpyWriter(path, dtype, row_shape)
    for lo, block in _blocks(member, (-1, *row_shape)):
        block = block.astype(dtype, copy=False)
        _check_finite(block, field, lo)
        writer.append(block)
    return writer.close()[1:]


def _copy_y(y: _Member, path: Path, dtype, kind: str) -> TargetMeta:
    """y at ``dtype``, with its range and, for integer labels in one column, its classes."""
    writer = NpyWriter(path, dtype, y.shape[1:])
    seen = TargetRange(list_classes=kind == "integer" and y.ndim == 1)
    for lo, block in _blocks(y):
        block = block.astype(dtype, copy=False)
        _check_finite(block, "y", lo)
        writer.append(block)
        seen.add(block)
    shape = writer.close()
    return TargetMeta(shape=shape[1:], kind=kind, minimum=seen.low, maximum=seen.high, classes=seen.classes())


def _check_finite(block: np.ndarray, field: str, offset: int) -> None:
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        bad = np.argwhere(~np.isfinite(block))[0]
        index = (int(bad[0]) + offset, *(int(i) for i in bad[1:]))
        raise DataError(field, f"contains NaN or Inf (first at index {index})")
