"""One job's attempt on a worker, top-down: claim, load, train (resuming if it must), store, finish.

Every database write goes through worker/unit_of_work.py; every status change is a
transition of app/jobs/lifecycle.py, chosen in one place (_attempt).
"""
import json
import logging
import os
import socket
import threading
import time

import torch
from safetensors.torch import save

from app.config import get_settings
from app.jobs import lifecycle, progress, repository, sending
from app.jobs.lifecycle import JobStatus
from app.logs import add_job_fields, job_context, job_fields
from app.ml.errors import DataError, SpecError
from app.quotas import service as quotas
from app.storage import checkpoint_key, get_store, preprocessing_key, weights_key
from app.studies import pruning
from worker import drain, memory, packs, parallel, reaper, registry, storing, unit_of_work
from worker.attempt import Attempt, load
from worker.training import (Diverged, Hooks, Stopped, Trainer, checkpoint, precision,
                             resolve_device)
from worker.training.checkpoint import restore_bytes
from worker.training.distributed import Ranks

log = logging.getLogger(__name__)


def worker_id() -> str:
    return get_settings().worker_id or f"{socket.gethostname()}:{os.getpid()}"


def run_job(job_id: str) -> None:
    """Trains the job if this delivery wins the claim; otherwise does nothing."""
    restore = drain.drain_on_sigterm()
    try:
        with job_context(job_id=job_id, worker=worker_id()):  # on every log line of the attempt
            _run(job_id)
    finally:
        restore()


def _claim(*, db_session, job_id: str, worker_id: str, lease_seconds: float) -> tuple[int | None, str | None]:
    """The claim, and the job's tenant for its log lines, in one unit of work.

    A job whose tenant is at its running-jobs quota stays waiting, marked unsent: the next
    reaper sweep (REAPER_INTERVAL_SECONDS) sends it again, to be claimed once a slot is free."""
    if not quotas.may_start(db_session=db_session, job_id=job_id):
        sending.mark_unsent(db_session=db_session, job_ids=[job_id])
        log.info("job %s waits: its tenant is at its running-jobs quota", job_id)
        return None, None
    number = lifecycle.claim(db_session=db_session, job_id=job_id, worker_id=worker_id, lease_seconds=lease_seconds)
    return number, repository.tenant_of(db_session=db_session, job_id=job_id) if number else None


def _claim_with_mates(*, db_session, job_id: str, worker_id: str, lease_seconds: float):
    """The claim and, in its transaction, the claim of the job's pack mates (worker/packs.py)."""
    number, tenant = _claim(db_session=db_session, job_id=job_id, worker_id=worker_id, lease_seconds=lease_seconds)
    mates = packs.claim_mates(db_session=db_session, job_id=job_id, worker_id=worker_id,
                              lease_seconds=lease_seconds) if number else []
    return number, tenant, mates


def _run(job_id: str) -> None:
    owner, settings = worker_id(), get_settings()
    if drain.told_to_drain():
        # This worker is shutting down: leave the job to another one, rather than start
        # it only to be stopped (the broker may still hand a draining worker a message).
        reaper.send([(job_id, unit_of_work.run(repository.queue_of, job_id=job_id))])
        log.info("job %s passed on: this worker is shutting down", job_id)
        return
    number, tenant, mates = unit_of_work.run(_claim_with_mates, job_id=job_id, worker_id=owner,
                                             lease_seconds=settings.lease_seconds)
    if not number:
        log.info("job %s is not claimable (already taken or finished); skipping", job_id)
        return
    add_job_fields(attempt=number, tenant=tenant)
    if mates:
        packs.run_pack([(job_id, number), *mates], owner)
        return
    log.info("training job %s, attempt %d", job_id, number)
    registry.set_current_job(job_id)
    heartbeat = Heartbeat(job_id, owner)
    heartbeat.start()
    try:
        _attempt(JobRun(job_id, owner, heartbeat.lost), number)
    finally:
        heartbeat.stopped.set()
        registry.set_current_job(None)
        memory.release()  # the next job in this process gets the device back whole


class Heartbeat(threading.Thread):
    """Renews the job's lease while it trains, so the job is not taken for lost."""

    def __init__(self, job_id: str, owner: str):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.job_id, self.owner, self.stopped = job_id, owner, threading.Event()
        # Set when the lease was taken over: another worker owns the job now.
        self.lost = threading.Event()
        self.log_fields = job_fields()  # a new thread starts with no context: its lines carry the job's too

    def run(self) -> None:
        with job_context(**self.log_fields):
            self._renew()

    def _renew(self) -> None:
        settings = get_settings()
        while not self.stopped.wait(settings.heartbeat_seconds):
            try:
                # Once, not retried: this loop renews again in HEARTBEAT_SECONDS.
                renewed = unit_of_work.run_once(progress.renew_lease, job_id=self.job_id,
                                                worker_id=self.owner, lease_seconds=settings.lease_seconds)
                if not renewed:
                    self.lost.set()
                    return
            except Exception:
                log.exception("heartbeat for %s failed", self.job_id)


class JobRun:
    """One attempt's hooks for the trainer, and why it was told to stop."""

    def __init__(self, job_id: str, owner: str, lease_lost: threading.Event):
        # lease_lost: the Heartbeat's ``lost`` (a data parallel rank 0 learns it from its flushes alone).
        self.job_id, self.owner, self.lease_lost = job_id, owner, lease_lost
        self.attempt: Attempt | None = None  # set by begin, once loaded
        self.started = time.monotonic()  # the time limit counts from the claim
        self.limit_seconds = float("inf")
        self.cancel_requested = False
        self.lost = False
        self.draining = False
        self.pruned: str | None = None  # why its study's pruner stopped it
        self.checkpoints = storing.Checkpoints(job_id)

    def begin(self, attempt: Attempt) -> None:
        self.attempt, self.limit_seconds = attempt, attempt.time_limit

    def flush(self, points: list[dict], epoch: int, step: int) -> None:
        epochs = [p for p in points if p["kind"] == "epoch"]
        latest = {k: v for k, v in epochs[-1].items() if k != "kind"} if epochs else None
        cancel = unit_of_work.run(progress.record_progress, job_id=self.job_id, worker_id=self.owner,
                                  points=points, epoch=epoch, step=step, latest=latest)
        self.lost |= cancel is None
        self.cancel_requested |= bool(cancel)
        if epochs and self.attempt.prunable and not self.pruned and epoch < self.attempt.spec.training.epochs:
            self.pruned = unit_of_work.run(pruning.verdict, study_id=self.attempt.study_id, job_id=self.job_id)

    def should_stop(self) -> bool:
        self.lost |= self.lease_lost.is_set()
        self.draining |= drain.told_to_drain()
        timed_out = time.monotonic() > self.started + self.limit_seconds
        return self.lost or self.cancel_requested or self.draining or timed_out or bool(self.pruned)

    def rewind(self, step: int) -> None:
        unit_of_work.run(progress.rewind, job_id=self.job_id, worker_id=self.owner, step=step,
                         reason="diverged; rolled back with a halved learning rate")

    def checkpoint(self, blob: bytes, step: int) -> None:
        """Stores the checkpoint (whole or not at all), then records its step; while the store
        is down the checkpoint is skipped and training goes on (worker/storing.py). A worker that
        has lost the job writes none: the new owner's checkpoint is the job's now."""
        if self.lost or self.lease_lost.is_set():
            return
        if self.checkpoints.put(get_store(), checkpoint_key(self.job_id), blob, step):
            unit_of_work.run(progress.mark_checkpoint, job_id=self.job_id, worker_id=self.owner, step=step)

    def hooks(self) -> Hooks:
        settings = get_settings()
        return Hooks(flush=self.flush, should_stop=self.should_stop, rewind=self.rewind,
                     flush_seconds=settings.metrics_flush_seconds, flush_every_epoch=self.attempt.prunable,
                     checkpoint=self.checkpoint,
                     checkpoint_seconds=settings.checkpoint_seconds,
                     checkpoint_min_gap=settings.checkpoint_min_gap_seconds)


def _attempt(run: JobRun, number: int, train=None) -> None:
    """Trains and stores one attempt, then makes the transition its outcome calls for.
    ``train(run, number)`` returns the weights' key (a pack's member: worker/packs.py)."""
    try:
        key = (train or _train_and_store)(run, number)
    except Stopped:
        _stopped(run)
    except (SpecError, DataError, Diverged, memory.OutOfMemory, parallel.JobFailed) as exc:  # the job's own fault
        _finish(run, JobStatus.FAILED, error=str(exc))
    except Exception as exc:
        # Not the job's fault: another attempt may find the store up, or every rank alive.
        if storing.unreachable(exc) or isinstance(exc, parallel.RanksFailed):
            _retry(run, number, exc)
            return
        log.exception("job %s failed", run.job_id)
        _finish(run, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    else:
        _finish(run, JobStatus.SUCCEEDED, weights_path=key)


def _retry(run: JobRun, number: int, exc: Exception) -> None:
    """The store was unreachable, or a rank was lost: the job goes back to the queue while it has
    attempts left."""
    reason = str(exc) if isinstance(exc, parallel.RanksFailed) else storing.unreachable_reason(exc)
    log.warning("job %s, attempt %d: %s", run.job_id, number, reason)
    if number >= get_settings().max_attempts:
        _finish(run, JobStatus.FAILED, error=f"{reason} (attempt {number} of MAX_ATTEMPTS)")
        return
    unit_of_work.run(_retry_later, job_id=run.job_id, worker_id=run.owner, reason=f"{reason}; retrying")


def _retry_later(*, db_session, job_id: str, worker_id: str, reason: str) -> None:
    """Back to the queue, marked unsent: the next reaper sweep (REAPER_INTERVAL_SECONDS) sends it,
    which gives the store that long to come back before the next attempt."""
    if lifecycle.retry(db_session=db_session, job_id=job_id, worker_id=worker_id, reason=reason):
        sending.mark_unsent(db_session=db_session, job_ids=[job_id])


def _stopped(run: JobRun) -> None:
    """The trainer stopped early: hand the job back, or end it cancelled or timed out."""
    if run.draining and not run.cancel_requested and not run.lost:
        if unit_of_work.run(lifecycle.hand_back, job_id=run.job_id, worker_id=run.owner):
            reaper.send([(run.job_id, run.attempt.queue)])
            log.info("job %s handed back: the worker is shutting down", run.job_id)
    elif run.cancel_requested:
        _finish(run, JobStatus.CANCELLED, error="cancelled by request")
    elif run.pruned:
        _finish(run, JobStatus.PRUNED, error=run.pruned)
    elif run.lost:
        log.warning("job %s: lease lost to another worker; stopping without finishing", run.job_id)
    else:
        _finish(run, JobStatus.FAILED,
                error=f"time limit: the job trained for {run.limit_seconds:g} s, its limit "
                      "(training.max_seconds, or the server's MAX_JOB_SECONDS)")


def _finish(run: JobRun, status: JobStatus, *, error: str | None = None,
            weights_path: str | None = None) -> None:
    if not unit_of_work.run(lifecycle.finish, job_id=run.job_id, worker_id=run.owner, status=status,
                            error=error, weights_path=weights_path):
        log.warning("job %s was no longer ours to finish", run.job_id)
        return
    log.info("job %s %s%s", run.job_id, status, f": {error}" if error else "")
    try:  # what the job left in the store counts against its tenant's stored-bytes quota
        unit_of_work.run(quotas.record_artifacts, job_id=run.job_id)
    except Exception:  # noqa: BLE001 - the job has ended all the same; its bytes count from the next export
        log.exception("job %s: could not record its artifacts' bytes", run.job_id)
    if run.attempt is not None and run.attempt.study_id:
        # Its study may have room now, or be done. Should this fail, the next reaper sweep does it.
        reaper.advance_study(run.attempt.study_id)


def _train_and_store(run: JobRun, number: int) -> str:
    """Loads, trains and stores the job; running out of memory is an OutOfMemory with the figures."""
    device, spec_precision = torch.device("cpu"), "fp32"  # until the job's are known
    try:
        attempt = load(job_id=run.job_id, number=number, owner=run.owner)
        run.begin(attempt)
        device, spec_precision = resolve_device(attempt.spec.training.device), attempt.spec.training.precision
        if attempt.spec.training.devices > 1:  # N ranks, started here (worker/parallel.py)
            return parallel.train(run, attempt)
        return train_on(run, attempt, device)
    except Exception as exc:  # MemoryError and torch.OutOfMemoryError are Exceptions
        if not memory.is_out_of_memory(exc):
            raise
        reason = memory.describe(exc, device, spec_precision)  # while the job still holds its memory
    # Raised outside the except block, so that it does not hold the memory error (and,
    # through its traceback, the job's tensors) as its context: they are freed here.
    raise memory.OutOfMemory(reason)


def train_on(run: JobRun, attempt: Attempt, device: torch.device, ranks: Ranks | None = None) -> str:
    """Trains and stores the job on ``device``; as one of its data parallel ``ranks``, only rank 0
    writes (its progress, checkpoints, weights) and the others return no key."""
    leader = ranks is None or ranks.leader
    memory.start(device)
    trainer = build_trainer(run, attempt, device, ranks)
    try:
        result = trainer.run()
    except Stopped:
        if run.draining and leader:  # hand back at this very step: everything up to it is flushed
            run.checkpoint(checkpoint.to_bytes(trainer), trainer.step)
        raise
    return _store(attempt, result.model, trainer.data.preprocessing) if leader else ""


def build_trainer(run: JobRun, attempt: Attempt, device: torch.device, ranks: Ranks | None = None) -> Trainer:
    """The attempt's Trainer on ``device``, resumed from its checkpoint when an attempt came before;
    as one of data parallel ``ranks``, rank 0 alone records the device and has the hooks."""
    leader = ranks is None or ranks.leader
    if leader:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        name = name if ranks is None else f"{ranks.world} x {name}"
        unit_of_work.run(progress.set_device, job_id=attempt.job_id, worker_id=attempt.owner, device=name)
    precision.require_gpu(attempt.spec.training.precision, device)
    trainer = Trainer(attempt.spec, *attempt.train, device, run.hooks() if leader else Hooks(), attempt.validation,
                      direct=get_settings().direct_kernels, sources=attempt.sources, ranks=ranks)
    if attempt.resumes:
        _resume(trainer, attempt, leader)
    return trainer


def _resume(trainer: Trainer, attempt: Attempt, leader: bool = True) -> None:
    """Restores the last checkpoint, if there is one, and rewinds the earlier attempt's later points."""
    blob = attempt.checkpoint()
    # The checkpoint's own step: a put the store took but whose answer was lost (or whose
    # mark_checkpoint failed) leaves a later checkpoint than the recorded step, whole all the same.
    step = restore_bytes(trainer, blob) if blob is not None else None
    if step != attempt.resume_step:
        log.warning("job %s: the stored checkpoint is at step %s, the recorded one at %s; resuming from "
                    "the stored one", attempt.job_id, step, attempt.resume_step)
    if not leader:  # every rank restores the checkpoint; rank 0 alone rewinds the points
        return
    unit_of_work.run(progress.resume_from, job_id=attempt.job_id, worker_id=attempt.owner, step=step)
    log.info("job %s resumes from %s", attempt.job_id, f"step {step}" if step else "the start")


def _store(attempt: Attempt, model: torch.nn.Module, preprocessing: dict) -> str:
    """Stores the trained weights and the preprocessing they expect; returns the weights' key."""
    job_id, store = attempt.job_id, get_store()
    # Predictions and rebuilt models must see inputs as training did (app.ml.preprocessing):
    # the fit the trainer made, not a second one.
    storing.put_retrying(store, preprocessing_key(job_id), json.dumps(preprocessing).encode(), "preprocessing")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    key = weights_key(job_id)
    storing.put_retrying(store, key, save(state, metadata={"job_id": job_id}), "weights")
    try:
        store.delete(checkpoint_key(job_id))
    except Exception:  # noqa: BLE001 - the job is done; a leftover checkpoint goes with the job's folder
        log.warning("job %s: its checkpoint could not be removed", job_id, exc_info=True)
    return key
