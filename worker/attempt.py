"""One attempt at a job as the worker loads it, once, when it starts: spec, data, limits, resume point."""
from dataclasses import dataclass

import numpy as np
from safetensors.torch import load as load_safetensors
from sqlalchemy.orm import Session

from app.config import get_settings
from app.jobs.preprocessing import read as read_preprocessing
from app.ml.errors import DataError
from app.ml.spec import JobSpec
from app.models import Dataset, Job
from app.datasets import stored
from app.storage import checkpoint_key, get_store, weights_key
from app.studies import pruning
from worker import unit_of_work
from worker.training.sources import Sources, Teacher

Arrays = tuple[np.ndarray, np.ndarray]  # (x, y)


@dataclass(frozen=True)
class Attempt:
    job_id: str
    number: int  # 1 for the first attempt; a lost worker's job is resumed by attempt 2, ...
    owner: str  # the worker id that claimed it
    spec: JobSpec
    train: Arrays
    validation: Arrays | None  # data.validation_dataset's arrays, when it names one
    time_limit: float  # seconds: training.max_seconds, capped by MAX_JOB_SECONDS
    queue: str  # gpu | cpu: where the job is sent again if it is handed back
    # The step of the stored checkpoint a retry resumes from (None: none was written, or it is gone).
    resume_step: int | None
    study_id: str | None = None  # a study's member: its study, advanced when the member ends
    prunable: bool = False  # its study's pruner may stop it (worker/runner.py asks at each epoch flush)
    sources: Sources = Sources()  # init.from_job's weights, distill.teacher's model

    @property
    def resumes(self) -> bool:
        """Whether an attempt came before this one (lost or handed back): its later points are rewound."""
        return self.number > 1 or self.resume_step is not None

    def checkpoint(self) -> bytes | None:
        """The checkpoint at resume_step. Read when restored, not loaded with the rest: it holds
        a model and optimizer state, not worth keeping in memory beside the live ones."""
        if self.resume_step is None:
            return None
        return get_store().get(checkpoint_key(self.job_id))


@dataclass(frozen=True)
class _Row:
    spec: JobSpec
    train_sha: str
    validation_sha: str | None
    queue: str
    checkpoint_step: int | None
    study_id: str | None
    prunable: bool
    init_weights: str | None = None  # init.from_job's weights key
    teacher: tuple | None = None  # distill.teacher's (job id, model spec, input shape, weights key)


def load(*, job_id: str, number: int, owner: str) -> Attempt:
    """Reads the job's row and datasets in one unit of work, then its arrays and checkpoint."""
    row = unit_of_work.run(_read, job_id=job_id)
    settings = get_settings()
    limit = min(row.spec.training.max_seconds or settings.max_job_seconds, settings.max_job_seconds)
    stored = row.checkpoint_step is not None and get_store().exists(checkpoint_key(job_id))
    return Attempt(job_id=job_id, number=number, owner=owner, spec=row.spec,
                   train=_arrays(row.train_sha),
                   validation=_arrays(row.validation_sha) if row.validation_sha else None,
                   time_limit=limit, queue=row.queue, resume_step=row.checkpoint_step if stored else None,
                   study_id=row.study_id, prunable=row.prunable, sources=_sources(row))


def _read(*, db_session: Session, job_id: str) -> _Row:
    """The job's validated spec, its datasets' blobs, queue and checkpoint step."""
    job = db_session.get(Job, job_id)
    dataset = db_session.get(Dataset, job.dataset_id) if job.dataset_id else None
    if dataset is None:
        raise DataError("dataset", "the job's dataset was deleted before it could train")
    spec = JobSpec.model_validate(job.spec)
    val_id = spec.data.validation_dataset
    val = db_session.get(Dataset, val_id) if val_id else None
    if val_id and val is None:
        raise DataError("data.validation_dataset", "was deleted before the job could train")
    init_weights = teacher = None
    if spec.init is not None:
        init_weights = _source(db_session, spec.init.from_job, "init.from_job")[1]
    if spec.distill is not None:
        source, key = _source(db_session, spec.distill.teacher, "distill.teacher")
        teacher = (source.id, JobSpec.model_validate(source.spec).model, tuple(source.input_shape), key)
    return _Row(spec=spec, train_sha=dataset.sha256, validation_sha=val.sha256 if val else None,
                queue=job.queue, checkpoint_step=job.checkpoint_step, study_id=job.study_id,
                prunable=pruning.applies(db_session=db_session, study_id=job.study_id),
                init_weights=init_weights, teacher=teacher)


def _source(db_session: Session, job_id: str, field: str) -> tuple[Job, str]:
    """The job a spec starts or learns from and its weights' key; the pre-flight found it
    succeeded, but it may have been deleted since."""
    source = db_session.get(Job, job_id)
    if source is None:
        raise DataError(field, f"{job_id} was deleted before this job could train")
    return source, source.weights_path or weights_key(source.id)


def _weights(key: str, field: str) -> dict:
    store = get_store()
    if not store.exists(key):
        raise DataError(field, f"the weights at {key} were deleted before this job could train")
    return load_safetensors(store.get(key))


def _sources(row: _Row) -> Sources:
    """The source jobs' weights (and the teacher's preprocessing), read once per attempt."""
    init_state = _weights(row.init_weights, "init.from_job") if row.init_weights else None
    teacher = None
    if row.teacher is not None:
        job_id, model, input_shape, key = row.teacher
        teacher = Teacher(model=model, input_shape=input_shape, state=_weights(key, "distill.teacher"),
                          preprocessing=read_preprocessing(job_id))
    return Sources(init_state=init_state, teacher=teacher)


def _arrays(sha: str) -> Arrays:
    """The dataset memory-mapped: nothing is read yet; worker/training/data.py loads it or gathers from it."""
    return stored.open_mapped(get_store(), sha)

