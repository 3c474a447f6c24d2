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
from worker import memory, registry, runner
from worker.attempt import load
from worker.training import Stopped, TrainResult, checkpoint, resolve_device
from worker.training.packed import PackedTrainer

log = logging.getLogger(__name__)


def claim_mates(*, db_session, job_id: str, worker_id: str, lease_seconds: float) -> list[tuple[str, int]]:
    """Claims the waiting members that pack with the just-claimed ``job_id``; returns their (id, attempt).

    Records the pack on every member claimed (its id is ``job_id``'s), or that the job trains alone."""
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
    for member in [job_id, *(m for m, _ in mates)]:  # alone: a retry forgets its earlier attempt's pack
        progress.set_pack(db_session=db_session, job_id=member, worker_id=worker_id,
                          pack_id=job_id if mates else None, packed_with=len(mates) + 1 if mates else None)
    return mates


def run_pack(members: list[tuple[str, int]], owner: str) -> None:
    """Trains the claimed members (job id, attempt number) together; each ends as its lone attempt
    would, as soon as it leaves the pack."""
    log.info("training a pack of %d members: %s", len(members), ", ".join(f"{j} (attempt {n})" for j, n in members))
    registry.set_current_job(members[0][0])
    runs = []
    for job_id, number in members:
        heartbeat = runner.Heartbeat(job_id, owner)
        heartbeat.start()
        runs.append((runner.JobRun(job_id, owner, heartbeat.lost), number, heartbeat))
    try:
        _train(runs)
    finally:
        for _, _, heartbeat in runs:
            heartbeat.stopped.set()
        registry.set_current_job(None)
        memory.release()  # the next job in this process gets the device back whole


def _end(runs: list, i: int, train) -> None:
    """Member i's transition (runner._attempt), its weights stored first when it succeeded."""
    run, number, heartbeat = runs[i]
    runner._attempt(run, number, train=train)
    heartbeat.stopped.set()


def _train(runs: list) -> None:
    """Loads every member, trains those that loaded together, and ends each as it leaves."""
    built: dict[int, tuple] = {}  # member -> (attempt, trainer)
    device = torch.device("cpu")
    for i, (run, number, _) in enumerate(runs):
        try:
            attempt = load(job_id=run.job_id, number=number, owner=run.owner)
            run.begin(attempt)
            device = resolve_device(attempt.spec.training.device)
            built[i] = attempt, runner.build_trainer(run, attempt, device)
        except Exception as exc:  # noqa: BLE001 - this member's own end (its data or store): the others train
            _end(runs, i, _raising(exc))
    order = sorted(built)
    if not order:
        return

    def ended(k: int, outcome) -> None:
        attempt, trainer = built[order[k]]
        _end(runs, order[k], _ending(runs[order[k]][0], attempt, trainer, outcome))

    memory.start(device)
    pack = None
    try:
        pack = PackedTrainer([built[i][1] for i in order], on_end=ended)
        pack.run()
    except Exception as exc:  # noqa: BLE001 - the pack as a whole failed (out of memory): every member left did
        if memory.is_out_of_memory(exc):
            exc = memory.OutOfMemory(memory.describe(exc, device, "fp32"))
        for k in pack.active if pack is not None else range(len(order)):
            _end(runs, order[k], _raising(exc))


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
