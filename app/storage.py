"""The artifact store: datasets and weights by key, each object written whole or not at all.

Callers speak keys ("jobs/<id>/weights.safetensors"), never paths: the store is a local
folder (ARTIFACT_URL file://..., the default) or, on several machines, an S3-compatible object
store (s3://..., app/s3store.py), picked by get_store(). ``local_path`` is for readers that need
a file (memory maps, FileResponse): here it is the stored file itself.
"""
import os
import shutil
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlparse

from app.config import get_settings


class ArtifactStore:
    """A folder of artifacts; writes go to a temp file in the same folder, then a rename."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def get(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""
        return self._path(key).read_bytes()

    def open(self, key: str):
        """A binary reader of the object's bytes, for reading it in chunks."""
        return self._path(key).open("rb")

    def local_path(self, key: str) -> Path:
        """A local file holding the object (FileNotFoundError when there is none)."""
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path

    def put(self, key: str, data: bytes) -> None:
        with self._staged(key) as f:
            f.write(data)

    def put_file(self, key: str, source: Path) -> None:
        """Stores a local file's bytes under ``key`` (the file is left where it is)."""
        with open(source, "rb") as src, self._staged(key) as f:
            shutil.copyfileobj(src, f, 1 << 20)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> list[str]:
        """The keys under a folder (a job's jobs/<id>/), sorted; [] when there is none."""
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in folder.rglob("*")
                      if p.is_file() and not p.name.startswith(".tmp-"))

    def folder_bytes(self, prefix: str) -> int:
        """The bytes of the objects under a folder (a job's jobs/<id>/); 0 when there is none."""
        return sum(self.size(k) for k in self.keys(prefix))

    def delete_folder(self, prefix: str) -> None:
        """Removes a folder of artifacts (a job's jobs/<id>/) and everything in it."""
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def _staged(self, key: str):
        return _AtomicFile(self._path(key))


class _AtomicFile:
    """A temp file beside ``target``, fsynced and renamed over it on a clean exit, removed otherwise."""

    def __init__(self, target: Path):
        self.target = target

    def __enter__(self):
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.target.parent, prefix=".tmp-")
        self.file = os.fdopen(fd, "wb")
        return self.file

    def __exit__(self, kind, *_):
        try:
            if kind is None:
                self.file.flush()
                os.fsync(self.file.fileno())
            self.file.close()
            if kind is None:
                os.replace(self.tmp, self.target)
        finally:
            Path(self.tmp).unlink(missing_ok=True)
        return False


def get_store() -> ArtifactStore:
    """The configured store (ARTIFACT_URL), one per process: an S3 client is not fork-safe."""
    s = get_settings()
    return _store(s.resolved_artifact_url, s.s3_endpoint_url, s.resolved_cache_dir, s.cache_max_bytes, os.getpid())


def store_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the object store could not be reached (a folder store: never)."""
    if "botocore" not in sys.modules:
        return False
    from app.s3store import unreachable

    return unreachable(exc)


@lru_cache(maxsize=8)
def _store(url: str, endpoint: str, cache_dir: Path, cache_max_bytes: int, _pid: int):
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return ArtifactStore(Path(unquote(parsed.path)))
    from app.filecache import LocalCache
    from app.s3store import S3Store, make_client  # boto3 is imported only by an s3:// deployment

    return S3Store(parsed.netloc, parsed.path, LocalCache(cache_dir, cache_max_bytes), make_client(endpoint))


def dataset_key(sha256: str) -> str:
    """A dataset stored before the .npy layout: one .npz (app/datasets/stored.py still reads it)."""
    return f"datasets/{sha256}.npz"


def dataset_array_key(sha256: str, array: str) -> str:
    """One of a dataset's arrays ("x" or "y") as a memory-mappable .npy (app/datasets/stored.py)."""
    return f"datasets/{sha256}/{array}.npy"


def weights_key(job_id: str) -> str:
    return f"jobs/{job_id}/weights.safetensors"


def preprocessing_key(job_id: str) -> str:
    """What the job's data options fitted (app.ml.preprocessing.fit_preprocessing), as JSON."""
    return f"jobs/{job_id}/preprocessing.json"


def job_folder(job_id: str) -> str:
    """Where every artifact of a job lives (weights, checkpoint, preprocessing, ONNX)."""
    return f"jobs/{job_id}"


def checkpoint_key(job_id: str) -> str:
    return f"jobs/{job_id}/checkpoint.pt"
