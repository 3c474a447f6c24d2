"""A dataset's arrays in the artifact store: the one place that knows how they are laid out."""
import numpy as np

from app.ml.dataset_files import ParsedDataset
from app.storage import ArtifactStore, dataset_key


def key(sha256: str) -> str:
    return dataset_key(sha256)


def exists(store: ArtifactStore, sha256: str) -> bool:
    return store.exists(key(sha256))


def stored_bytes(store: ArtifactStore, sha256: str) -> int:
    return store.size(key(sha256))


def encode(parsed: ParsedDataset) -> bytes:
    return parsed.to_npz()


def write(store: ArtifactStore, sha256: str, data: bytes) -> None:
    store.put(key(sha256), data)


def read(store: ArtifactStore, sha256: str) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's (x, y) arrays."""
    with np.load(store.local_path(key(sha256)), allow_pickle=False) as npz:
        return npz["x"], npz["y"]


def delete(store: ArtifactStore, sha256: str) -> None:
    store.delete(key(sha256))
