"""Dataset uploads: parse, check, store content-addressed, record."""
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from app.config import get_settings
from app.datasets import ingest, repository, stored
from app.datasets.ingest.builder import Staged
from app.datasets.spool import spool_dir
from app.datasets.upload import Upload
from app.db import after_commit
from app.errors import ApiError
from app.ml.check import DatasetInfo
from app.ml import builtin_datasets as builtin
from app.ml.dataset_files import FileLimits, ParsedDataset, parse_inline
from app.ml.data_spec import BUILTIN_SPECS
from app.models import Dataset
from app.models.base import new_id
from app.quotas import service as quotas
from app.storage import ArtifactStore


def file_limits() -> FileLimits:
    settings = get_settings()
    return FileLimits(max_bytes=settings.max_dataset_bytes, max_columns=settings.max_csv_columns)


@contextmanager
def _workdir() -> Iterator[Path]:
    """A folder for one ingestion's files, on DATA_DIR's disk; removed with everything in it."""
    with tempfile.TemporaryDirectory(dir=spool_dir(), prefix="work-") as tmp:
        yield Path(tmp)


def ingest_file(*, db_session: Session, store: ArtifactStore, tenant_id: str, name: str, filename: str,
                path: Path, targets: list[str]) -> Dataset:
    """Parses the local file at ``path`` by ``filename``'s extension (.csv, .parquet, .arrow/.feather/.ipc,
    .npz), checks it, stores and records it; raises DataError/ApiError naming the field.

    Streams: memory is bounded by the reader's blocks, not the file (app/datasets/ingest/). Runs in
    the caller's thread, never on the event loop. Nothing is stored when a check fails."""
    with _workdir() as work:
        staged, fmt = ingest.stage(path=Path(path), filename=filename, targets=list(targets),
                                   limits=file_limits(), workdir=work)
        row = _staged_row(tenant_id=tenant_id, name=name, source_format=fmt, staged=staged)
        return _save(db_session=db_session, store=store, row=row, files=(staged.x_path, staged.y_path),
                     field="file")


def parse_json(*, x: list, y: list, max_rows: int) -> ParsedDataset:
    if len(x) > max_rows:
        raise ApiError(413, f"inline datasets are limited to {max_rows} rows; upload a file instead", "x")
    return parse_inline(x, y)


def upload(*, db_session: Session, store: ArtifactStore, tenant_id: str, upload: Upload,
           max_inline_rows: int) -> Dataset:
    """Stores and records an upload: inline arrays, or the file the request spooled to disk."""
    if upload.inline is None:
        return ingest_file(db_session=db_session, store=store, tenant_id=tenant_id, name=upload.name,
                           filename=upload.filename, path=upload.path, targets=upload.targets)
    parsed = parse_json(x=upload.inline.x, y=upload.inline.y, max_rows=max_inline_rows)
    return create(db_session=db_session, store=store, tenant_id=tenant_id, name=upload.name,
                  source_format="json", parsed=parsed, field="x")


def create(*, db_session: Session, store: ArtifactStore, tenant_id: str, name: str,
           source_format: str, parsed: ParsedDataset, field: str = "file") -> Dataset:
    """Stores the arrays under their content address and records the dataset."""
    return save(db_session=db_session, store=store,
                row=new_row(tenant_id=tenant_id, name=name, source_format=source_format, parsed=parsed),
                parsed=parsed, field=field)


def new_row(*, tenant_id: str, name: str, source_format: str, parsed: ParsedDataset) -> Dataset:
    """An unsaved row describing ``parsed``; ``bytes`` is set when it is saved."""
    return Dataset(
        id=new_id("ds"), tenant_id=tenant_id, name=name, source_format=source_format,
        sha256=parsed.digest(), bytes=0, rows=int(parsed.x.shape[0]),
        feature_shape=list(parsed.x.shape[1:]), target_shape=list(parsed.y.shape[1:]),
        target_kind=parsed.target_kind, target_min=float(parsed.y.min()),
        target_max=float(parsed.y.max()), classes=parsed.class_labels(),
        feature_names=parsed.feature_names, target_names=parsed.target_names,
    )


def _staged_row(*, tenant_id: str, name: str, source_format: str, staged: Staged) -> Dataset:
    t = staged.target
    return Dataset(
        id=new_id("ds"), tenant_id=tenant_id, name=name, source_format=source_format, sha256=staged.sha256,
        bytes=0, rows=staged.rows, feature_shape=list(staged.feature_shape), target_shape=list(t.shape),
        target_kind=t.kind, target_min=t.minimum, target_max=t.maximum, classes=t.classes,
        feature_names=staged.feature_names, target_names=staged.target_names,
    )


def save(*, db_session: Session, store: ArtifactStore, row: Dataset, parsed: ParsedDataset,
         field: str = "file") -> Dataset:
    """Stores arrays held in memory (inline JSON, a builtin's) and records the row."""
    if stored.exists(store, row.sha256):
        return _save(db_session=db_session, store=store, row=row, files=None, field=field)
    with _workdir() as work:
        files = stored.stage_arrays(parsed.x, parsed.y, work)
        return _save(db_session=db_session, store=store, row=row, files=files, field=field)


def _save(*, db_session: Session, store: ArtifactStore, row: Dataset, files: tuple[Path, Path] | None,
          field: str) -> Dataset:
    """Stores the staged (x.npy, y.npy) unless identical arrays are there already; records the row."""
    there = stored.exists(store, row.sha256)
    adding = stored.stored_bytes(store, row.sha256) if there else sum(p.stat().st_size for p in files)
    # Checked before anything is written; the tenant's row counts its bytes even when another
    # tenant's identical arrays are already there.
    quotas.check_stored_bytes(db_session=db_session, tenant_id=row.tenant_id, adding=adding, field=field)
    if not there:
        stored.write_files(store, row.sha256, *files)
    row.bytes = stored.stored_bytes(store, row.sha256)
    db_session.add(row)
    db_session.flush()
    return row


def builtin_row(*, db_session: Session, tenant_id: str, ref) -> tuple[Dataset, ParsedDataset | None]:
    """The tenant's row holding this builtin (``ref``: a data_spec builtin model).

    Returns (row, None) for an identical row the tenant already has, else an unsaved row and
    its data, for ``save`` once the job that asked for it has passed its check."""
    name = ref.label()
    digest = _builtin_digests.get(name)
    parsed = None
    if digest is None:
        parsed = builtin.load(ref.name, **ref.params())
        digest = _remember_digest(name, parsed.digest())
    existing = repository.find_builtin(db_session=db_session, tenant_id=tenant_id, sha256=digest, name=name)
    if existing is not None:
        return existing, None
    parsed = parsed or builtin.load(ref.name, **ref.params())
    return new_row(tenant_id=tenant_id, name=name, source_format="builtin", parsed=parsed), parsed


# Builtin label (name and parameters) -> the digest of its data. A builtin is generated the
# same way every time (bundled files, seeded generators), so a submission naming one the
# tenant already has needs only the digest: not the rows, nor hashing them (up to 20 MB).
_builtin_digests: dict[str, str] = {}
DIGESTS_LIMIT = 1024


def _remember_digest(name: str, digest: str) -> str:
    if len(_builtin_digests) >= DIGESTS_LIMIT:
        _builtin_digests.clear()
    _builtin_digests[name] = digest
    return digest


def get_or_404(*, db_session: Session, tenant_id: str, dataset_id: str) -> Dataset:
    """The tenant's dataset; a 404 when the tenant has none by that id."""
    row = repository.get(db_session=db_session, tenant_id=tenant_id, dataset_id=dataset_id)
    if row is None:
        raise ApiError(404, f"no dataset {dataset_id!r}")
    return row


def delete(*, db_session: Session, store: ArtifactStore, dataset: Dataset) -> None:
    """Deletes a dataset no queued or running job uses, and its file once no other row shares it.

    The file goes only after the commit: a rolled-back deletion must still find its data."""
    if repository.active_job_count(db_session=db_session, dataset_id=dataset.id):
        raise ApiError(409, "a queued or running job uses this dataset; wait for it or cancel it")
    still_used = repository.other_rows_with_blob(db_session=db_session, sha256=dataset.sha256,
                                                 exclude_id=dataset.id)
    db_session.delete(dataset)
    db_session.flush()
    if not still_used:
        sha = dataset.sha256
        after_commit(db_session, lambda: stored.delete(store, sha))


def info(dataset: Dataset) -> DatasetInfo:
    return DatasetInfo(
        rows=dataset.rows, feature_shape=tuple(dataset.feature_shape),
        target_shape=tuple(dataset.target_shape), target_kind=dataset.target_kind,
        target_min=dataset.target_min, target_max=dataset.target_max,
    )


def builtin_catalog() -> list[dict]:
    """Every builtin with its parameters' JSON Schema and its shapes at the defaults."""
    out = []
    for name, model in BUILTIN_SPECS.items():
        props = model.model_json_schema()["properties"]
        params = {k: {f: v for f, v in p.items() if f != "title"} for k, p in props.items() if k != "name"}
        defaults = model(name=name).params()
        entry, shape = builtin.BUILTINS[name], builtin.shapes(name, **defaults)
        out.append({"name": name, "task": entry.task, "description": entry.description,
                    "parameters": params, "defaults": defaults, "rows": shape.rows,
                    "feature_shape": list(shape.feature_shape), "target_shape": list(shape.target_shape),
                    "target_kind": shape.target_kind, "num_classes": shape.num_classes})
    return out
