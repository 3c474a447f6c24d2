"""training.devices > 1 on the worker: the job's N ranks started by torch's elastic launcher, and what
rank 0 tells the runner about how the attempt ended.

The training process that claimed the job keeps its lease (worker/runner.py Heartbeat) and starts the
ranks with ``torch.distributed.launcher.api.elastic_launch``: each rank is ``python -m worker.rank``, a
subprocess (a Celery prefork child is daemonic and may not start multiprocessing children). With
max_restarts 0 the launcher ends every rank when one fails and raises ChildFailedError: the attempt is
then lost, and retried like a lost job (RanksFailed). Rank 0 does the job's writes as the runner's
JobRun does in one process, and leaves an Outcome file; the runner makes the transition (_attempt).
"""
import json
import logging
import os
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from worker import drain
from worker.storing import StoreUnavailable
from worker.training import Stopped

log = logging.getLogger(__name__)

# Seconds a rank has to end after SIGTERM, when another rank failed, before the launcher kills it.
SHUTDOWN_SECONDS = 5


class _NoSignalHandlerWarning(logging.Filter):
    """Drops the launcher's warning that, run in a thread, it registers no signal handlers and may leave
    orphaned ranks: here a rank dies with its launching process (worker/rank_training.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to register signal handlers")


logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(_NoSignalHandlerWarning())


class RanksFailed(Exception):
    """A rank ended without an outcome (killed, crashed, a collective timed out): the attempt is lost."""


class JobFailed(Exception):
    """Rank 0's training failed for the job's own reason (SpecError, DataError, Diverged, out of memory)."""


@dataclass
class Outcome:
    """How rank 0's attempt ended: succeeded (weights), stopped (why), failed (the job's error) or
    unreachable (the artifact store was down: retried)."""

    kind: str
    weights: str | None = None
    error: str | None = None
    cancel_requested: bool = False
    lost: bool = False
    draining: bool = False
    pruned: str | None = None

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)  # whole or not at all: a rank killed mid-write leaves no outcome

    @classmethod
    def read(cls, path: Path) -> "Outcome | None":
        return cls(**json.loads(path.read_text())) if path.exists() else None

    def result(self, run) -> str:
        """The weights' key, or what one process would have raised; a stop's reasons go onto ``run``
        (the parent's JobRun), for the runner's _stopped to read."""
        if self.kind == "succeeded":
            return self.weights
        if self.kind == "stopped":
            run.cancel_requested, run.lost, run.draining, run.pruned = \
                self.cancel_requested, self.lost, self.draining, self.pruned
            raise Stopped()
        if self.kind == "unreachable":
            raise StoreUnavailable(self.error)
        raise JobFailed(self.error)


def train(run, attempt) -> str:
    """Trains the attempt as training.devices ranks; returns the weights' key rank 0 stored, or raises
    as one process would (Stopped, with run's reasons set; JobFailed; StoreUnavailable), or RanksFailed."""
    path = outcome_path()
    try:
        launch(attempt.spec.training.devices, "worker.rank", attempt.job_id, str(attempt.number), attempt.owner,
               repr(run.started), str(path), run_id=f"{attempt.job_id}-{attempt.number}")
        outcome = Outcome.read(path)
    finally:
        path.unlink(missing_ok=True)
    if outcome is None:
        raise RanksFailed("rank 0 ended without saying how its training ended")
    return outcome.result(run)


def launch(world: int, module: str, *args: str, run_id: str) -> None:
    """Runs ``python -m module *args`` as ``world`` ranks on this machine (c10d rendezvous on a free
    local port) and waits for them; raises RanksFailed when one of them failed (all are ended then).

    The launcher runs in a thread of its own: it installs its signal handlers only in the main thread,
    which keeps the training process's own (worker/drain.py). A drain this process is told of is
    passed on to the ranks by its marker file, which rank 0 checks at its flushes as a training
    process checks its parent's."""
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=world, run_id=run_id, rdzv_backend="c10d",
                          rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.1,
                          shutdown_timeout=SHUTDOWN_SECONDS)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            elastic_launch(config, entrypoint=sys.executable)("-m", module, *args)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"ranks-{run_id}", daemon=True)
    thread.start()
    relayed = False
    try:
        while thread.is_alive():
            thread.join(0.2)
            if not relayed and drain.told_to_drain():
                drain.start_draining()  # this process's marker: what rank 0 checks (its parent's)
                relayed = True
    finally:
        drain.clear()
    if failure:
        raise RanksFailed(_why(failure[0])) from failure[0]


def _why(exc: BaseException) -> str:
    if isinstance(exc, ChildFailedError):
        rank, first = exc.get_first_failure()
        return f"rank {rank} of the job's ranks ended with exit code {first.exitcode}"
    return f"the job's ranks could not run: {type(exc).__name__}: {exc}"


def outcome_path() -> Path:
    """Where rank 0 leaves its Outcome, a fresh file for each attempt."""
    fd, name = tempfile.mkstemp(prefix="trainyard-outcome-", suffix=".json")
    os.close(fd)
    os.unlink(name)
    return Path(name)
