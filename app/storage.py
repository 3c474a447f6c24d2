"""The artifact folder: datasets and weights, written atomically (temp file, then rename)."""
import os
import shutil
import tempfile
from pathlib import Path

from app.config import get_settings


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def put(self, key: str, data: bytes) -> Path:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def folder_bytes(self, key: str) -> int:
        """The bytes of the files under a folder (a job's jobs/<id>/); 0 when there is none."""
        folder = self.path(key)
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0

    def delete_folder(self, key: str) -> None:
        """Removes a folder of artifacts (a job's jobs/<id>/) and everything in it."""
        shutil.rmtree(self.path(key), ignore_errors=True)


def get_store() -> ArtifactStore:
    return ArtifactStore(get_settings().resolved_artifact_dir)


def dataset_key(sha256: str) -> str:
    return f"datasets/{sha256}.npz"


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
