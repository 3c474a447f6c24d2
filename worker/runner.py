"""One job's life on a worker: claim, load, resume or start, train, persist, finish."""
import json
import logging
import os
import socket
import threading
import time

import numpy as np
from sqlalchemy.exc import OperationalError
import torch
from safetensors.torch import save

from app.config import get_settings
from app.db import get_session_factory
from app.jobs import control, repository, sending
from app.ml.errors import DataError, SpecError
from app.ml.spec import JobSpec
from app.models import Dataset, Job
from app.storage import checkpoint_key, dataset_key, get_store, preprocessing_key, weights_key
from worker import drain, memory, registry
from worker.training import (Diverged, Hooks, Stopped, Trainer, checkpoint, job_preprocessing, precision,
                             resolve_device)
from worker.training.checkpoint import restore_bytes

log = logging.getLogger(__name__)


def worker_id() -> str:
    return get_settings().worker_id or f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat(threading.Thread):
    """Renews the job's lease while it trains, so the job is not taken for lost."""

    def __init__(self, job_id: str, owner: str):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.job_id, self.owner, self.stopped = job_id, owner, threading.Event()
        # Set when the lease was taken over: another worker owns the job now.
        self.lost = threading.Event()

    def run(self) -> None:
        settings = get_settings()
        while not self.stopped.wait(settings.heartbeat_seconds):
            try:
                with get_session_factory()() as s:
                    renewed = repository.renew_lease(db_session=s, job_id=self.job_id,
                                                     worker_id=self.owner,
                                                     lease_seconds=settings.lease_seconds)
                    s.commit()
                if not renewed:
                    self.lost.set()
                    return
            except Exception:
                log.exception("heartbeat for %s failed", self.job_id)


def _arrays(sha: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(get_store().path(dataset_key(sha)), allow_pickle=False) as npz:
        return npz["x"], npz["y"]


def _load(job_id: str) -> tuple[JobSpec, np.ndarray, np.ndarray, tuple | None]:
    """The spec, the training arrays, and the data.validation_dataset arrays when it names one."""
    with get_session_factory()() as s:
        job = s.get(Job, job_id)
        dataset = s.get(Dataset, job.dataset_id) if job.dataset_id else None
        if dataset is None:
            raise DataError("dataset", "the job's dataset was deleted before it could train")
        spec, sha = JobSpec.model_validate(job.spec), dataset.sha256
        val_id = spec.data.validation_dataset
        val = s.get(Dataset, val_id) if val_id else None
        if val_id and val is None:
            raise DataError("data.validation_dataset", "was deleted before the job could train")
        val_sha = val.sha256 if val else None
    return (spec, *_arrays(sha), _arrays(val_sha) if val_sha else None)


def with_db_retry(write):
    """Runs a database write, retrying while the database is unreachable (a restart, a
    failover) for up to DB_RETRY_SECONDS, so a blip pauses training instead of losing points."""
    deadline, delay = time.monotonic() + get_settings().db_retry_seconds, 0.2
    while True:
        try:
            return write()
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            log.warning("database unreachable; retrying in %.1f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class JobRun:
    """One attempt at one job: the hooks the trainer calls, and why it was told to stop."""

    def __init__(self, job_id: str, owner: str, heartbeat: Heartbeat, limit_seconds: float):
        self.job_id, self.owner, self.heartbeat = job_id, owner, heartbeat
        self.deadline = time.monotonic() + limit_seconds
        self.limit_seconds = limit_seconds
        self.cancel_requested = False
        self.lost = False
        self.draining = False

    def flush(self, points: list[dict], epoch: int, step: int) -> None:
        epochs = [p for p in points if p["kind"] == "epoch"]
        latest = {k: v for k, v in epochs[-1].items() if k != "kind"} if epochs else None

        def write():
            with get_session_factory()() as s:
                cancel = repository.record_progress(db_session=s, job_id=self.job_id,
                                                    worker_id=self.owner, points=points,
                                                    epoch=epoch, step=step, latest=latest)
                s.commit()
                return cancel
        cancel = with_db_retry(write)
        self.lost |= cancel is None
        self.cancel_requested |= bool(cancel)

    def should_stop(self) -> bool:
        self.lost |= self.heartbeat.lost.is_set()
        self.draining |= drain.told_to_drain()
        return self.lost or self.cancel_requested or self.draining or time.monotonic() > self.deadline

    def rewind(self, step: int) -> None:
        def write():
            with get_session_factory()() as s:
                repository.rewind(db_session=s, job_id=self.job_id, worker_id=self.owner, step=step,
                                  reason="diverged; rolled back with a halved learning rate")
                s.commit()
        with_db_retry(write)

    def checkpoint(self, blob: bytes, step: int) -> None:
        get_store().put(checkpoint_key(self.job_id), blob)  # atomic: write, then rename

        def write():
            with get_session_factory()() as s:
                control.mark_checkpoint(db_session=s, job_id=self.job_id, worker_id=self.owner,
                                        step=step)
                s.commit()
        with_db_retry(write)

    def hooks(self) -> Hooks:
        settings = get_settings()
        return Hooks(flush=self.flush, should_stop=self.should_stop, rewind=self.rewind,
                     flush_seconds=settings.metrics_flush_seconds, checkpoint=self.checkpoint,
                     checkpoint_seconds=settings.checkpoint_seconds,
                     checkpoint_min_gap=settings.checkpoint_min_gap_seconds)


def _finish(job_id: str, owner: str, status: str, error: str | None = None,
            weights_path: str | None = None) -> None:
    def write():
        with get_session_factory()() as s:
            if not repository.finish(db_session=s, job_id=job_id, worker_id=owner, status=status,
                                     error=error, weights_path=weights_path):
                log.warning("job %s was no longer ours to finish", job_id)
            s.commit()
    with_db_retry(write)


def _resume_point(job_id: str) -> tuple[int | None, bytes | None]:
    """The checkpoint a retry resumes from, if the lost attempt wrote one."""
    with get_session_factory()() as s:
        step = s.get(Job, job_id).checkpoint_step
    path = get_store().path(checkpoint_key(job_id))
    if step is None or not path.exists():
        return None, None
    return step, path.read_bytes()


def _train_and_store(run: JobRun, attempt: int) -> str:
    """Trains and stores the job; running out of memory is an OutOfMemory with the figures."""
    device, spec_precision = torch.device("cpu"), "fp32"  # until the job's are known
    try:
        spec, x, y, validation = with_db_retry(lambda: _load(run.job_id))
        device, spec_precision = resolve_device(spec.training.device), spec.training.precision
        return _train_on(run, attempt, device, spec, x, y, validation)
    except Exception as exc:  # MemoryError and torch.OutOfMemoryError are Exceptions
        if not memory.is_out_of_memory(exc):
            raise
        reason = memory.describe(exc, device, spec_precision)  # while the job still holds its memory
    # Raised outside the except block, so that it does not hold the memory error (and,
    # through its traceback, the job's tensors) as its context: they are freed here.
    raise memory.OutOfMemory(reason)


def _train_on(run: JobRun, attempt: int, device: torch.device, spec: JobSpec, x: np.ndarray,
              y: np.ndarray, validation: tuple | None) -> str:
    job_id = run.job_id

    def record_device():
        with get_session_factory()() as s:
            name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
            repository.set_device(db_session=s, job_id=job_id, device=name)
            s.commit()
    with_db_retry(record_device)
    precision.require_gpu(spec.training.precision, device)
    memory.start(device)
    trainer = Trainer(spec, x, y, device, run.hooks(), validation)
    step, blob = with_db_retry(lambda: _resume_point(job_id))
    if attempt > 1 or blob is not None:  # a lost or handed-back attempt came before this one
        if blob is not None:
            restore_bytes(trainer, blob)
        def resume():
            with get_session_factory()() as s:
                control.resume_from(db_session=s, job_id=job_id, step=step)
                s.commit()
        with_db_retry(resume)
        log.info("job %s resumes from %s", job_id, f"step {step}" if step else "the start")
    try:
        result = trainer.run()
    except Stopped:
        if run.draining:  # hand back at this very step: everything up to it is flushed
            run.checkpoint(checkpoint.to_bytes(trainer), trainer.step)
        raise
    # Predictions and rebuilt models must see inputs as training did: app.ml.data.apply_preprocessing.
    get_store().put(preprocessing_key(job_id), json.dumps(job_preprocessing(spec, x, y)).encode())
    state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
    key = weights_key(job_id)
    get_store().put(key, save(state, metadata={"job_id": job_id}))
    get_store().delete(checkpoint_key(job_id))
    return key


def _time_limit(job_id: str) -> float:
    settings = get_settings()
    with get_session_factory()() as s:
        asked = (s.get(Job, job_id).spec.get("training") or {}).get("max_seconds")
    return min(asked or settings.max_job_seconds, settings.max_job_seconds)


def _queue_of(job_id: str) -> str:
    with get_session_factory()() as s:
        return s.get(Job, job_id).queue


def _stopped(run: JobRun) -> None:
    if run.draining and not run.cancel_requested and not run.lost:
        with get_session_factory()() as s:
            handed = control.hand_back(db_session=s, job_id=run.job_id, worker_id=run.owner)
            s.commit()
        if handed:
            sending.send([(run.job_id, _queue_of(run.job_id))])
            log.info("job %s handed back: the worker is shutting down", run.job_id)
    elif run.cancel_requested:
        _finish(run.job_id, run.owner, "cancelled", error="cancelled by request")
    elif run.lost:
        log.warning("job %s: lease lost to another worker; stopping without finishing", run.job_id)
    else:
        _finish(run.job_id, run.owner, "failed",
                error=f"time limit: the job trained for {run.limit_seconds:g} s, its limit "
                      "(training.max_seconds, or the server's MAX_JOB_SECONDS)")


def run_job(job_id: str) -> None:
    """Trains the job if this delivery wins the claim; otherwise does nothing."""
    restore = drain.drain_on_sigterm()
    try:
        _run(job_id)
    finally:
        restore()


def _run(job_id: str) -> None:
    owner, settings = worker_id(), get_settings()
    if drain.told_to_drain():
        # This worker is shutting down: leave the job to another one, rather than start
        # it only to be stopped (the broker may still hand a draining worker a message).
        sending.send([(job_id, _queue_of(job_id))])
        log.info("job %s passed on: this worker is shutting down", job_id)
        return
    with get_session_factory()() as s:
        attempt = repository.claim(db_session=s, job_id=job_id, worker_id=owner,
                                   lease_seconds=settings.lease_seconds)
        s.commit()
    if not attempt:
        log.info("job %s is not claimable (already taken or finished); skipping", job_id)
        return
    log.info("training job %s, attempt %d", job_id, attempt)
    registry.set_current_job(job_id)
    heartbeat = Heartbeat(job_id, owner)
    heartbeat.start()
    run = JobRun(job_id, owner, heartbeat, with_db_retry(lambda: _time_limit(job_id)))
    try:
        key = _train_and_store(run, attempt)
        _finish(job_id, owner, "succeeded", weights_path=key)
    except Stopped:
        _stopped(run)
    except (SpecError, DataError, Diverged, memory.OutOfMemory) as exc:
        _finish(job_id, owner, "failed", error=str(exc))
    except Exception as exc:
        log.exception("job %s failed", job_id)
        _finish(job_id, owner, "failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        heartbeat.stopped.set()
        registry.set_current_job(None)
        memory.release()  # the next job in this process gets the device back whole
