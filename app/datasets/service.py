"""Dataset uploads: parse, check, store content-addressed, record."""
from sqlalchemy.orm import Session

from app.datasets import repository
from app.errors import ApiError
from app.ml.check import DatasetInfo
from app.ml.data import ParsedDataset, parse_csv, parse_inline, parse_npz
from app.ml.errors import DataError
from app.models import Dataset
from app.models.base import new_id
from app.storage import ArtifactStore, dataset_key


def parse_upload(*, filename: str, data: bytes, targets: list[str]) -> tuple[ParsedDataset, str]:
    """Parses an uploaded file by its extension; returns the data and its format."""
    lower = filename.lower()
    if lower.endswith(".csv"):
        return parse_csv(data, targets), "csv"
    if lower.endswith(".npz"):
        if targets:
            raise DataError("target", "a .npz upload carries its targets in array y; drop 'target'")
        return parse_npz(data), "npz"
    raise DataError("file", f"{filename!r}: upload a .csv (with a header row) or a .npz (arrays x and y)")


def parse_json(*, x: list, y: list, max_rows: int) -> ParsedDataset:
    if len(x) > max_rows:
        raise ApiError(413, f"inline datasets are limited to {max_rows} rows; upload a file instead", "x")
    return parse_inline(x, y)


def create(*, db_session: Session, store: ArtifactStore, tenant_id: str, name: str,
           source_format: str, parsed: ParsedDataset) -> Dataset:
    """Stores the arrays under their content address and records the dataset."""
    sha = parsed.digest()
    key = dataset_key(sha)
    if not store.exists(key):
        store.put(key, parsed.to_npz())
    labels = parsed.class_labels()
    row = Dataset(
        id=new_id("ds"), tenant_id=tenant_id, name=name, source_format=source_format,
        sha256=sha, bytes=store.path(key).stat().st_size, rows=int(parsed.x.shape[0]),
        feature_shape=list(parsed.x.shape[1:]), target_shape=list(parsed.y.shape[1:]),
        target_kind=parsed.target_kind, target_min=float(parsed.y.min()),
        target_max=float(parsed.y.max()), classes=labels,
        feature_names=parsed.feature_names, target_names=parsed.target_names,
    )
    db_session.add(row)
    db_session.flush()
    return row


def delete(*, db_session: Session, dataset: Dataset) -> str | None:
    """Deletes a dataset no queued or running job uses.

    Returns the artifact key to remove once the deletion is committed (None while
    another dataset row still shares the file)."""
    if repository.active_job_count(db_session=db_session, dataset_id=dataset.id):
        raise ApiError(409, "a queued or running job uses this dataset; wait for it or cancel it")
    still_used = repository.other_rows_with_blob(db_session=db_session, sha256=dataset.sha256,
                                                 exclude_id=dataset.id)
    db_session.delete(dataset)
    db_session.flush()
    return None if still_used else dataset_key(dataset.sha256)


def info(dataset: Dataset) -> DatasetInfo:
    return DatasetInfo(
        rows=dataset.rows, feature_shape=tuple(dataset.feature_shape),
        target_shape=tuple(dataset.target_shape), target_kind=dataset.target_kind,
        target_min=dataset.target_min, target_max=dataset.target_max,
    )
