"""One .npy file written row block by row block (its header last, once the rows are counted), and
the content address of a dataset's pair of them, read back in chunks.

Blocks go straight to their place after a header of a fixed size reserved up front, so a file of
any length is written once, with no copy and no array of the whole in memory; np.load(mmap_mode="r")
then opens it as an ordinary .npy.
"""
import hashlib
import io
import struct
from pathlib import Path

import numpy as np

CHUNK_BYTES = 8 << 20  # what one read-back or conversion pass holds at a time
_ROWS_RESERVED = 10**18  # the header is sized for this many rows, so any real count fits it


def _dict_text(dtype: np.dtype, shape: tuple) -> str:
    return repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})


def header_length(dtype: np.dtype, row_shape: tuple) -> int:
    """Bytes before the data: numpy's own header for the largest row count, a multiple of 64."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(dtype),
                                               "fortran_order": False, "shape": (_ROWS_RESERVED, *row_shape)})
    return len(buf.getvalue())


def header_bytes(dtype: np.dtype, shape: tuple, length: int) -> bytes:
    """A version 1.0 .npy header of exactly ``length`` bytes (the dict padded with spaces, as numpy pads it)."""
    body_len = length - 10  # magic (6), version (2), header length (2)
    body = _dict_text(dtype, shape).ljust(body_len - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", body_len) + body.encode("latin-1")


class NpyWriter:
    """Appends blocks of rows (each of ``row_shape``, in ``dtype``) to a .npy at ``path``."""

    def __init__(self, path: Path, dtype, row_shape: tuple):
        self.path, self.dtype, self.row_shape = Path(path), np.dtype(dtype), tuple(row_shape)
        self.offset = header_length(self.dtype, self.row_shape)
        self.rows = 0
        self._file = open(self.path, "wb")
        self._file.seek(self.offset)

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        assert block.shape[1:] == self.row_shape, (block.shape, self.row_shape)
        self._file.write(memoryview(block).cast("B"))
        self.rows += block.shape[0]

    def close(self) -> tuple:
        """Writes the header for the rows appended; returns the array's shape."""
        shape = (self.rows, *self.row_shape)
        self._file.seek(0)
        self._file.write(header_bytes(self.dtype, shape, self.offset))
        self._file.close()
        return shape

    def discard(self) -> None:
        self._file.close()


def npy_layout(path: Path) -> tuple[tuple, np.dtype, bool, int]:
    """(shape, dtype, fortran_order, data offset) from a .npy's header; ValueError when it has none."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        return shape, dtype, fortran, f.tell()


def chunk_rows(row_shape: tuple, itemsize: int) -> int:
    """Rows per chunk so a pass holds about CHUNK_BYTES at a time."""
    row_bytes = max(int(np.prod(row_shape, dtype=np.int64)) * itemsize, 1)
    return max(CHUNK_BYTES // row_bytes, 1)


def iter_rows(path: Path):
    """(first row, block) over a .npy in chunks, read with plain reads: the API's resident memory
    stays a chunk (a memory map's pages would count, and stay, in it). Fortran order: mapped."""
    shape, dtype, fortran, offset = npy_layout(path)
    if fortran or dtype.hasobject or not shape:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        step = chunk_rows(arr.shape[1:], arr.dtype.itemsize)
        for lo in range(0, arr.shape[0] if arr.ndim else 0, step):
            yield lo, np.asarray(arr[lo:lo + step])
        return
    row_shape = tuple(shape[1:])
    row_items = int(np.prod(row_shape, dtype=np.int64))
    step = chunk_rows(row_shape, dtype.itemsize)
    with open(path, "rb") as f:
        f.seek(offset)
        for lo in range(0, shape[0], step):
            n = min(step, shape[0] - lo)
            block = np.fromfile(f, dtype=dtype, count=n * row_items)
            if block.size != n * row_items:
                raise ValueError(f"the .npy is truncated at row {lo + block.size // max(row_items, 1)}")
            yield lo, block.reshape((n, *row_shape))


def digest(x_path: Path, y_path: Path) -> str:
    """The dataset's content address: sha256 over x then y (dtype, shape, bytes), as
    ParsedDataset.digest computes it in memory, so a file and the same arrays agree."""
    h = hashlib.sha256()
    for path in (x_path, y_path):
        shape, dtype, _, _ = npy_layout(path)
        h.update(f"{dtype.str}{tuple(shape)}".encode())
        for _, block in iter_rows(path):
            h.update(np.ascontiguousarray(block))
    return h.hexdigest()
