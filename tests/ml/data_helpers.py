"""Helpers the dataset-parsing tests share."""
import io

import numpy as np
import pytest

from app.ml.errors import DataError


def data_error(fn, *args) -> DataError:
    with pytest.raises(DataError) as info:
        fn(*args)
    return info.value


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
