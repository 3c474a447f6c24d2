"""The datasets a job trains and validates on: resolved, checked with the spec, and stored.

A builtin named in the job's ``dataset`` field becomes an ordinary tenant-owned dataset
row (reusing an identical one the tenant has), so the pre-flight check, the worker and
everything downstream see an uploaded dataset like any other.
"""
from dataclasses import dataclass, field, replace

from sqlalchemy.orm import Session

from app.datasets import data_path, repository, service
from app.jobs import sources
from app.ml.check import DatasetInfo, Limits, Plan, check_targets, plan_job, probability_rows
from app.ml.dataset_files import ParsedDataset
from app.ml.preprocessing import one_hot_width
from app.ml.data_spec import BUILTIN_SPECS
from app.ml.distill import check_distill
from app.ml.errors import SpecError
from app.ml.spec import JobSpec
from app.ml.warm_start import SourceJob, check_init
from app.models import Dataset
from app.storage import ArtifactStore

VALIDATION = "data.validation_dataset"


@dataclass
class JobData:
    dataset: Dataset  # unsaved while ``parsed`` holds a builtin's new rows
    validation: Dataset | None
    parsed: ParsedDataset | None = None
    # The jobs init.from_job and distill.teacher name, by "init" / "distill" (app/jobs/sources.py).
    sources: dict[str, SourceJob] = field(default_factory=dict)


def resolve(*, db_session: Session, tenant_id: str, spec: JobSpec) -> JobData:
    """Finds the job's datasets, or generates its builtin; raises SpecError naming the field."""
    parsed = None
    if isinstance(spec.dataset, str):
        dataset = repository.get(db_session=db_session, tenant_id=tenant_id, dataset_id=spec.dataset)
        if dataset is None:
            raise SpecError("dataset", f"no dataset {spec.dataset!r}; upload one with POST /v1/datasets, "
                            f"or name a builtin: {', '.join(BUILTIN_SPECS)}")
    else:
        dataset, parsed = service.builtin_row(db_session=db_session, tenant_id=tenant_id, ref=spec.dataset)
    validation = None
    if spec.data.validation_dataset:
        validation = repository.get(db_session=db_session, tenant_id=tenant_id,
                                    dataset_id=spec.data.validation_dataset)
        if validation is None:
            raise SpecError(VALIDATION, f"no dataset {spec.data.validation_dataset!r}")
    return JobData(dataset, validation, parsed,
                   sources.resolve(db_session=db_session, tenant_id=tenant_id, spec=spec))


def plan(spec: JobSpec, data: JobData, limits: Limits) -> Plan:
    """The pre-flight check of app/ml/check.py, with the data options and the validation dataset."""
    info = _info(data.dataset, spec, data.validation.rows if data.validation else None)
    job_plan = plan_job(spec, info, limits)
    if data.validation is not None:
        _check_validation(spec, info, _info(data.validation, spec, None), job_plan.output_shape,
                          data.dataset.classes, data.validation.classes)
        job_plan.validation_rows = data.validation.rows
    if "init" in data.sources:
        check_init(spec.init, spec.model, info.feature_shape, data.sources["init"])
    if "distill" in data.sources:
        check_distill(spec, info.feature_shape, job_plan.output_shape, data.sources["distill"])
    _plan_data_path(spec, data, job_plan)
    return job_plan


def _plan_data_path(spec: JobSpec, data: JobData, job_plan: Plan) -> None:
    """The data's size against the worker's memory, and the path it will take there."""
    rows = [d for d in (data.dataset, data.validation) if d is not None]
    nbytes = sum(data_path.data_bytes(d.rows, d.feature_shape, d.target_shape, d.target_kind) for d in rows)
    memory = data_path.worker_memory_bytes()
    path = data_path.choose(nbytes, memory)
    if path == data_path.MEMORY_MAPPED:
        data_path.check_mapped(spec)
    job_plan.data_bytes, job_plan.data_path = nbytes, path
    job_plan.data_note = data_path.describe(path, nbytes, memory)


def materialize(*, db_session: Session, store: ArtifactStore, data: JobData) -> Dataset:
    """The training dataset's row, storing a builtin's new rows first."""
    if data.parsed is None:
        return data.dataset
    data.dataset = service.save(db_session=db_session, store=store, row=data.dataset, parsed=data.parsed,
                                field="dataset")
    data.parsed = None
    return data.dataset


def _info(dataset: Dataset, spec: JobSpec, validation_rows: int | None) -> DatasetInfo:
    return replace(service.info(dataset), targets=spec.data.targets, validation_rows=validation_rows)


def _check_validation(spec: JobSpec, train: DatasetInfo, val: DatasetInfo, out: tuple[int, ...],
                      train_classes: list | None, val_classes: list | None) -> None:
    """The validation dataset must look like the training one to the model and the loss."""
    if val.feature_shape != train.feature_shape:
        raise SpecError(VALIDATION, f"has rows of shape {list(val.feature_shape)}, but the training "
                        f"dataset's are {list(train.feature_shape)}")
    # Probability rows are floats to the loss however they were stored: one-hot rows sent as
    # whole numbers are integer, soft labels float, and either validates the other.
    kinds_matter = not probability_rows(spec.loss, train)
    if val.target_shape != train.target_shape or (kinds_matter and val.target_kind != train.target_kind):
        raise SpecError(VALIDATION, f"has {val.target_kind} targets of shape {list(val.target_shape)}, but "
                        f"the training dataset has {train.target_kind} of shape {list(train.target_shape)}")
    if _has_text(train_classes) or _has_text(val_classes):
        # Text labels are numbered in sorted order per upload: other label sets, other numbers.
        if train_classes != val_classes:
            raise SpecError(VALIDATION, f"has the class labels {val_classes}, but the training dataset "
                            f"has {train_classes}; they must be the same labels")
    if spec.data.targets == "one_hot":
        width = one_hot_width(train.target_max)
        if val.target_min < 0 or val.target_max >= width:
            raise SpecError(VALIDATION, f"has labels {val.target_min:g}..{val.target_max:g}, but one_hot "
                            f"over the training dataset has {width} classes (0..{width - 1})")
        return
    try:
        check_targets(spec.loss, out, val)
    except SpecError as exc:
        raise SpecError(VALIDATION, exc.message) from None


def _has_text(classes: list | None) -> bool:
    return bool(classes) and any(isinstance(c, str) for c in classes)
