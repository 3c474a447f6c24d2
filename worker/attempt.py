"""One attempt at a job as the worker loads it, once, when it starts: spec, data, limits, resume point."""
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from app.config import get_settings
from app.ml.errors import DataError
from app.ml.spec import JobSpec
from app.models import Dataset, Job
from app.storage import checkpoint_key, dataset_key, get_store
from app.studies import pruning
from worker import unit_of_work

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

    @property
    def resumes(self) -> bool:
        """Whether an attempt came before this one (lost or handed back): its later points are rewound."""
        return self.number > 1 or self.resume_step is not None

    def checkpoint(self) -> bytes | None:
        """The checkpoint at resume_step. Read when restored, not loaded with the rest: it holds
        a model and optimizer state, not worth keeping in memory beside the live ones."""
        if self.resume_step is None:
            return None
        return get_store().path(checkpoint_key(self.job_id)).read_bytes()


@dataclass(frozen=True)
class _Row:
    spec: JobSpec
    train_sha: str
    validation_sha: str | None
    queue: str
    checkpoint_step: int | None
    study_id: str | None
    prunable: bool


def load(*, job_id: str, number: int, owner: str) -> Attempt:
    """Reads the job's row and datasets in one unit of work, then its arrays and checkpoint."""
    row = unit_of_work.run(_read, job_id=job_id)
    settings = get_settings()
    limit = min(row.spec.training.max_seconds or settings.max_job_seconds, settings.max_job_seconds)
    stored = row.checkpoint_step is not None and get_store().path(checkpoint_key(job_id)).exists()
    return Attempt(job_id=job_id, number=number, owner=owner, spec=row.spec,
                   train=_arrays(row.train_sha),
                   validation=_arrays(row.validation_sha) if row.validation_sha else None,
                   time_limit=limit, queue=row.queue, resume_step=row.checkpoint_step if stored else None,
                   study_id=row.study_id, prunable=row.prunable)


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
    return _Row(spec=spec, train_sha=dataset.sha256, validation_sha=val.sha256 if val else None,
                queue=job.queue, checkpoint_step=job.checkpoint_step, study_id=job.study_id,
                prunable=pruning.applies(db_session=db_session, study_id=job.study_id))


def _arrays(sha: str) -> Arrays:
    with np.load(get_store().path(dataset_key(sha)), allow_pickle=False) as npz:
        return npz["x"], npz["y"]

