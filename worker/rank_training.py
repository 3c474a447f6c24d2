"""What one data parallel rank of a job does (training.devices > 1): ``python -m worker.rank JOB ATTEMPT OWNER
STARTED OUTCOME`` (worker/rank.py), started by worker/parallel.py's launcher with torch.distributed's environment.

Every rank loads the attempt and trains the whole Trainer on its chunk of each batch; rank 0 also does
the job's writes, as the runner's JobRun does in one process (with the owner id the claim took), and
leaves its Outcome in the file OUTCOME. A rank exits 0 whenever its training ended in an outcome, so
a non-zero exit means a rank was killed or crashed: the runner retries the attempt.
"""
import ctypes
import logging
import os
import signal
import threading
from pathlib import Path

from app.logs import configure, job_context
from app.ml.errors import DataError, SpecError
from worker import drain, memory, storing, threads
from worker.attempt import load
from worker.identity import current
from worker.parallel import Outcome
from worker.runner import JobRun, train_on
from worker.training import Diverged, Stopped, resolve_device
from worker.training.distributed import Ranks

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """SIGKILL this rank when the training process that launched it dies (killed with no chance to end
    its ranks): an orphaned rank would go on training a job that is no longer this attempt's."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux
        pass


def _train(run: JobRun, ranks: Ranks) -> Outcome:
    """Trains this rank's part of the attempt; the Outcome says how it ended (rank 0's is the job's)."""
    try:
        return Outcome("succeeded", weights=train_on(run, run.attempt, ranks.device, ranks))
    except Stopped:
        return Outcome("stopped", cancel_requested=run.cancel_requested, lost=run.lost, draining=run.draining,
                       pruned=run.pruned)
    except (SpecError, DataError, Diverged) as exc:
        return Outcome("failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - said in the Outcome, as the runner says it for one process
        if memory.is_out_of_memory(exc):
            return Outcome("failed", error=memory.describe(exc, ranks.device, run.attempt.spec.training.precision))
        if storing.unreachable(exc):
            return Outcome("unreachable", error=storing.unreachable_reason(exc))
        log.exception("rank %d of job %s failed", ranks.rank, run.job_id)
        return Outcome("failed", error=f"{type(exc).__name__}: {exc}")


def main(argv: list[str]) -> int:
    job_id, number, owner, started, outcome_file = argv
    _die_with_parent()
    drain.hold_sigterm()  # a process-group SIGTERM drains (rank 0 hands the job back), as in one process
    configure()
    with job_context(job_id=job_id, attempt=int(number), worker=owner):
        run = JobRun(job_id, owner, threading.Event())  # the lease is the launching process's
        run.started = float(started)  # the time limit counts from the claim, on the same monotonic clock
        try:
            ranks = _join(run, int(number))
        except (SpecError, DataError) as exc:  # the same on every rank: the dataset was deleted, ...
            ranks, outcome = None, Outcome("failed", error=str(exc))
        else:
            outcome = _train(run, ranks)
        if os.environ.get("RANK") == "0":
            outcome.write(Path(outcome_file))
        if ranks is not None and outcome.kind != "failed":  # after a failure a peer may be gone: leaving
            ranks.leave()  # the group could wait on it
    return 0


def _join(run: JobRun, number: int) -> Ranks:
    """Loads the attempt, takes this rank's share of the worker's threads, and joins the job's ranks."""
    attempt = load(job_id=run.job_id, number=number, owner=run.owner)
    run.begin(attempt)
    device = resolve_device(attempt.spec.training.device)
    if device.type == "cpu":
        threads.apply(threads.rank_share(current().threads, attempt.spec.training.devices))
    return Ranks.join(device.type)
