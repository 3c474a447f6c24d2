"""A pack's attempt on a worker: the claim of a study member's pack mates, then one training for all.

Packing is decided at claim time: the worker that claims a packable member (app/studies/packing.py)
claims, in the same transaction, the study's other waiting members of the same pack key, up to
PACK_MAX_MEMBERS in all, each with lifecycle.claim (its own attempt number and lease). Their own
messages then find them unclaimable and are dropped (worker/duplicates.py). A lost worker's members
are requeued one by one by the reaper, and the first claim of a retry forms the pack again from
whichever of them wait, each resuming from its own checkpoint.

Each member keeps everything a lone attempt has (worker/runner.py): its JobRun (flushes, stop
checks, checkpoints under its own key), its Heartbeat, and its own transition at its end, made
by runner._attempt from the member's outcome in the pack (worker/training/packed.py).
"""
import logging

import torch

from app.config import get_settings
from app.jobs import lifecycle, progress
from app.models import Job
from app.quotas import service as quotas
from app.studies import packing
from app.studies import repository as studies
from worker import memory, registry, runner, unit_of_work
from worker.attempt import load
from worker.training import Stopped, TrainResult, checkpoint, resolve_device
from worker.training.packed import PackedTrainer

log = logging.getLogger(__name__)


def claim_mates(*, db_session, job_id: str, worker_id: str, lease_seconds: float) -> list[tuple[str, int]]:
    """Claims the waiting members that pack with the just-claimed ``job_id``; returns their (id, attempt).

    Records the pack on every member claimed (its id is ``job_id``'s); none when the job trains alone."""
    limit = get_settings().pack_max_members
    job = db_session.get(Job, job_id)
    if limit <= 1 or job is None or job.study_id is None or (key := packing.key_of(job.spec)) is None:
        return []
    mates: list[tuple[str, int]] = []
    for mate in studies.waiting_members(db_session=db_session, study_id=job.study_id, queue=job.queue,
                                        besides=job_id):
        if len(mates) >= limit - 1:
            break
        if packing.key_of(mate.spec) != key:
            continue
        if not quotas.may_start(db_session=db_session, job_id=mate.id):
            break  # the tenant's running-jobs quota: the rest wait for their own messages
        number = lifecycle.claim(db_session=db_session, job_id=mate.id, worker_id=worker_id,
                                 lease_seconds=lease_seconds)
        if number:
            mates.append((mate.id, number))
    for member in [job_id, *(m for m, _ in mates)] if mates else []:
        progress.set_pack(db_session=db_session, job_id=member, worker_id=worker_id, pack_id=job_id,
                          packed_with=len(mates) + 1)
    return mates


def run_pack(members: list[tuple[str, int]], owner: str) -> None:
    """Trains the claimed members (job id, attempt number) together; each ends as its lone attempt would."""
    log.info("training a pack of %d members: %s", len(members), ", ".join(f"{j} (attempt {n})" for j, n in members))
    registry.set_current_job(members[0][0])
    runs = []
    for job_id, number in members:
        heartbeat = runner.Heartbeat(job_id, owner)
        heartbeat.start()
        runs.append((runner.JobRun(job_id, owner, heartbeat), number))
    try:
        for (run, number), end in zip(runs, _train(runs)):
            runner._attempt(run, number, train=end)
    finally:
        for run, _ in runs:
            run.heartbeat.stopped.set()
        registry.set_current_job(None)
        memory.release()  # the next job in this process gets the device back whole


def _train(runs: list) -> list:
    """Loads and trains every member; returns, per member, the ``train`` its runner._attempt calls:
    it stores the member's weights, or raises what ended the member (its load's error included)."""
    ends: list = [None] * len(runs)
    built: dict[int, tuple] = {}  # member -> (attempt, trainer)
    device = torch.device("cpu")
    for i, (run, number) in enumerate(runs):
        try:
            attempt = load(job_id=run.job_id, number=number, owner=run.owner)
            run.begin(attempt)
            device = resolve_device(attempt.spec.training.device)
            built[i] = attempt, runner.build_trainer(run, attempt, device)
        except Exception as exc:  # noqa: BLE001 - this member's own end: the others still train
            ends[i] = _raising(exc)
    order = sorted(built)
    memory.start(device)
    try:
        outcomes = PackedTrainer([built[i][1] for i in order]).run()
    except Exception as exc:  # noqa: BLE001 - the pack as a whole failed (out of memory): every member did
        if memory.is_out_of_memory(exc):
            exc = memory.OutOfMemory(memory.describe(exc, device, "fp32"))
        outcomes = {k: exc for k in range(len(order))}
    for k, i in enumerate(order):
        attempt, trainer = built[i]
        ends[i] = _ending(runs[i][0], attempt, trainer, outcomes[k])
    return ends


def _raising(exc: BaseException):
    def end(run, number):
        raise exc
    return end


def _ending(run, attempt, trainer, outcome):
    """What the member's attempt does with its outcome: store its weights, or raise why it ended."""
    def end(run_, number):
        if isinstance(outcome, TrainResult):
            return runner._store(attempt, outcome.model, trainer.data.preprocessing)
        if isinstance(outcome, Stopped) and run.draining:  # hand back at this very step, as a lone attempt does
            run.checkpoint(checkpoint.to_bytes(trainer), trainer.step)
        raise outcome
    return end
