"""A dataset's arrays in the artifact store: the one place that knows how they are laid out.

Layout: datasets/<sha256>/x.npy and datasets/<sha256>/y.npy, plain .npy files a worker opens
with np.load(mmap_mode="r") (from store.local_path) without reading them whole. x is written
last, so its presence says both are whole. Datasets stored before this layout (one
datasets/<sha256>.npz each) are read where they are, not migrated: an .npz cannot be mapped,
so they are loaded into memory as they always were.
"""
import tempfile
from pathlib import Path

import numpy as np

from app.storage import ArtifactStore, dataset_array_key, dataset_key


def _legacy(sha256: str) -> str:
    return dataset_key(sha256)


def exists(store: ArtifactStore, sha256: str) -> bool:
    return store.exists(dataset_array_key(sha256, "x")) or store.exists(_legacy(sha256))


def stored_bytes(store: ArtifactStore, sha256: str) -> int:
    if store.exists(dataset_array_key(sha256, "x")):
        return sum(store.size(dataset_array_key(sha256, a)) for a in ("x", "y"))
    return store.size(_legacy(sha256))


def write_files(store: ArtifactStore, sha256: str, x_path: Path, y_path: Path) -> None:
    """Stores a dataset's two .npy files; y first, so a reader that finds x finds both."""
    store.put_file(dataset_array_key(sha256, "y"), y_path)
    store.put_file(dataset_array_key(sha256, "x"), x_path)


def stage_arrays(x: np.ndarray, y: np.ndarray, workdir: Path) -> tuple[Path, Path]:
    """Arrays held in memory (a builtin's, inline JSON's) as the layout's two files in ``workdir``."""
    x_path, y_path = Path(workdir) / "x.npy", Path(workdir) / "y.npy"
    np.save(x_path, np.ascontiguousarray(x), allow_pickle=False)
    np.save(y_path, np.ascontiguousarray(y), allow_pickle=False)
    return x_path, y_path


def write_arrays(store: ArtifactStore, sha256: str, x: np.ndarray, y: np.ndarray) -> None:
    """Stores arrays held in memory in the layout (test fixtures)."""
    with tempfile.TemporaryDirectory(prefix="dataset-") as tmp:
        write_files(store, sha256, *stage_arrays(x, y, Path(tmp)))


def open_mapped(store: ArtifactStore, sha256: str) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's (x, y), memory-mapped read-only (an old .npz: loaded, it cannot be mapped)."""
    if not store.exists(dataset_array_key(sha256, "x")):
        return read(store, sha256)
    return tuple(np.load(store.local_path(dataset_array_key(sha256, a)), mmap_mode="r", allow_pickle=False)
                 for a in ("x", "y"))


def read(store: ArtifactStore, sha256: str) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's (x, y) arrays, read into memory."""
    if store.exists(dataset_array_key(sha256, "x")):
        return tuple(np.load(store.local_path(dataset_array_key(sha256, a)), allow_pickle=False) for a in ("x", "y"))
    with np.load(store.local_path(_legacy(sha256)), allow_pickle=False) as npz:
        return npz["x"], npz["y"]


def delete(store: ArtifactStore, sha256: str) -> None:
    store.delete(dataset_array_key(sha256, "x"))  # first: the marker of a whole dataset
    store.delete(dataset_array_key(sha256, "y"))
    store.delete_folder(f"datasets/{sha256}")
    store.delete(_legacy(sha256))
