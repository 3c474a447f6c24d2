"""How many bytes an .npz's arrays unpack to, read before any array is decompressed.

Compression makes an upload's size say nothing of its arrays': a 3.1 MB .npz held 805,306,368
float32 zeros (3.2 GB), which np.load decompressed for 22.7 s up to a 6.6 GB peak before
anything could refuse it. Each array's size is declared twice, and both are read here: in the
zip directory (the member's uncompressed size) and in the .npy header at the member's start
(its shape and dtype: the allocation np.load will make). Only the header's few bytes are
decompressed. The larger of the two counts, at the dtype the dataset keeps (float32 features,
int64 or float32 targets), so the limit bounds what the API process holds.
"""
import io
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from app.ml.errors import DataError

# The dtype each array is kept at (app/ml/dataset_files.py): at most this many bytes an element.
KEPT_ITEMSIZE = {"x": 4, "y": 8}


def check_unpacked_size(data: bytes | Path, max_bytes: int) -> None:
    """Raises DataError("file") when arrays x and y would unpack to more than ``max_bytes``.

    A file that is not a zip, or a member that is not a .npy, passes: np.load says what is wrong."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, ValueError, OSError):
        return
    with archive:
        total = sum(_declared_bytes(archive, name, itemsize) for name, itemsize in KEPT_ITEMSIZE.items())
    if total > max_bytes:
        raise DataError("file", f"the .npz's arrays x and y unpack to {total:,} bytes, over the limit "
                                f"of {max_bytes:,} (MAX_DATASET_BYTES); send fewer rows or a smaller dtype")


def _declared_bytes(archive: zipfile.ZipFile, name: str, kept_itemsize: int) -> int:
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        return 0
    shape, dtype = _header(archive, info)
    count = int(np.prod(shape, dtype=object)) if shape is not None else 0
    return max(info.file_size, count * max(dtype.itemsize if dtype is not None else 0, kept_itemsize))


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple | None, np.dtype | None]:
    """The member's .npy shape and dtype, from its first bytes; (None, None) when it has no such header."""
    try:
        with archive.open(info) as member:
            version = npy_format.read_magic(member)
            read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, _, dtype = read(member)
            return shape, dtype
    except (ValueError, SyntaxError, OSError, EOFError, RuntimeError, zipfile.BadZipFile):
        # not a .npy (or a corrupt one): np.load reports it, in the file's own words
        return None, None
