"""NPZ uploads (app/ml/dataset_files.py parse_npz): what is accepted, and what is refused unread."""
import io
import zipfile

import numpy as np
import pytest

from app.datasets.ingest import parse_npz
from tests.ml.data_helpers import data_error, npz_bytes


# ---- NPZ -------------------------------------------------------------------------

def test_npz_valid_multi_dim_features():
    x = np.arange(24, dtype=np.float64).reshape(4, 2, 3)
    y = np.array([0, 1, 1, 0], dtype=np.int32)
    ds = parse_npz(npz_bytes(x=x, y=y))
    assert ds.x.dtype == np.float32 and ds.x.shape == (4, 2, 3)
    np.testing.assert_array_equal(ds.x, x)
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, y)
    assert ds.target_kind == "integer"


def test_npz_float_targets_and_1d_features():
    ds = parse_npz(npz_bytes(x=np.array([1, 2, 3], dtype=np.int16), y=np.array([0.5, 1.5, 2.5])))
    assert ds.x.shape == (3, 1) and ds.x.dtype == np.float32
    assert ds.y.dtype == np.float32 and ds.target_kind == "float"


def test_npz_extra_arrays_are_ignored():
    ds = parse_npz(npz_bytes(x=np.ones((2, 2)), y=np.zeros(2), meta=np.arange(3)))
    assert ds.x.shape == (2, 2)


@pytest.mark.parametrize("arrays, missing", [
    ({"x": np.ones((2, 2))}, "y"),
    ({"y": np.ones(2)}, "x"),
    ({"features": np.ones((2, 2)), "labels": np.ones(2)}, "x"),
])
def test_npz_missing_arrays(arrays, missing):
    err = data_error(parse_npz, npz_bytes(**arrays))
    assert err.field == "file" and f"'{missing}'" in err.message


UNPICKLED = []


def _record_unpickling():
    UNPICKLED.append(True)
    return "boom"


class Payload:
    """Unpickling this runs code: the parser must never do it."""

    def __reduce__(self):
        return (_record_unpickling, ())


@pytest.mark.parametrize("which", ["x", "y"])
def test_npz_object_arrays_are_refused_not_unpickled(which):
    UNPICKLED.clear()
    arrays = {"x": np.ones((2, 2)), "y": np.zeros(2)}
    arrays[which] = np.array([Payload(), Payload()], dtype=object)
    data = npz_bytes(**arrays)  # np.savez pickles object arrays
    err = data_error(parse_npz, data)
    assert err.field == "file"
    assert UNPICKLED == []
    # the file really does carry a pickle: loading it unsafely runs the payload
    with np.load(io.BytesIO(data), allow_pickle=True) as npz:
        npz[which]
    assert UNPICKLED == [True, True]


@pytest.mark.parametrize("data", [
    b"",
    b"garbage bytes, not a zip",
    b"PK\x03\x04" + b"\x00" * 40,  # a zip header and nothing else
])
def test_npz_garbage_bytes(data):
    assert data_error(parse_npz, data).field == "file"


def test_npz_truncated_file():
    data = npz_bytes(x=np.ones((50, 4)), y=np.zeros(50))
    assert data_error(parse_npz, data[: len(data) // 2]).field == "file"


def test_npz_plain_npy_is_not_an_npz():
    buf = io.BytesIO()
    np.save(buf, np.ones((2, 2)))
    assert data_error(parse_npz, buf.getvalue()).field == "file"


def test_npz_zip_with_a_non_array_member():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.npy", b"not an array")
        z.writestr("y.npy", b"not an array")
    err = data_error(parse_npz, buf.getvalue())
    assert err.field == "file" and "not a .npy array" in err.message


def test_npz_array_checks():
    assert data_error(parse_npz, npz_bytes(x=np.array([["a", "b"]]), y=np.zeros(1))).field == "x"
    assert data_error(parse_npz, npz_bytes(x=np.ones((2, 2)), y=np.array(["a", "b"]))).field == "y"
    assert data_error(parse_npz, npz_bytes(x=np.ones((3, 2)), y=np.zeros(2))).field == "y"
    assert data_error(parse_npz, npz_bytes(x=np.zeros((0, 2)), y=np.zeros(0))).field == "x"
    assert data_error(parse_npz, npz_bytes(x=np.ones((2, 2)), y=np.zeros((2, 1, 1)))).field == "y"
    nan_x = np.ones((2, 2))
    nan_x[1, 0] = np.nan
    err = data_error(parse_npz, npz_bytes(x=nan_x, y=np.zeros(2)))
    assert err.field == "x" and "(1, 0)" in err.message
    assert data_error(parse_npz, npz_bytes(x=np.ones((2, 2)), y=np.array([0.0, np.inf]))).field == "y"
