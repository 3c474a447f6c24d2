"""The Celery app the worker runs: the API's producer config plus the task module."""
import logging
import threading
from datetime import timedelta

from celery import bootsteps
from celery.signals import (
    setup_logging,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from app.config import get_settings
from app.models.base import utcnow
from app.queue import make_celery
from worker import drain

log = logging.getLogger(__name__)

celery_app = make_celery(get_settings())
celery_app.conf.update(
    include=["worker.tasks"],
    # Training runs in a child process: a crash or OOM kill there leaves the worker up.
    worker_concurrency=1,
    # One training process trains job after job: a fresh process per job cost every job a
    # process start, and on Redis up to 5 s more, since Celery often starts the replacement
    # from its 5 s timer instead of at the exit (celery#9588): a backlog of tiny jobs ran at
    # 0.35 jobs/s on Redis, 4.4 with one process (bench/backlog.py, docs/benchmarks.md).
    # A process is still replaced when it grew too big, or after TRAINING_PROCESS_MAX_JOBS.
    worker_max_tasks_per_child=get_settings().training_process_max_jobs or None,
    worker_max_memory_per_child=get_settings().training_process_max_memory_mb * 1024,  # KiB
    # Our tasks publish no result, so there is nothing to wait for from a killed training
    # process: free the pool slot for the re-sent job at once (Celery waits 10 s by default).
    worker_lost_wait=1.0,
    # Backstops only: the runner's own time limit (MAX_JOB_SECONDS) ends a job cleanly first.
    task_soft_time_limit=get_settings().max_job_seconds + 300,
    task_time_limit=get_settings().max_job_seconds + 600,
    worker_hijack_root_logger=False,
)


@setup_logging.connect
def _logging(loglevel=None, **_):
    # Connected, Celery configures no logging of its own: every line (Celery's too) goes out
    # in LOG_FORMAT through app/logs.py, and the training processes inherit it at the fork.
    from app.logs import configure

    configure(level=loglevel or logging.INFO)


@worker_init.connect
def _import_trainer(**_):
    # Imported once in the main process, before the pool forks: each fresh training process
    # then starts in milliseconds instead of importing torch. Importing torch does not
    # initialize CUDA, which must not happen before a fork.
    import worker.runner  # noqa: F401
    from worker.identity import current
    from worker.warmup import warm_up

    warm_up()  # the lazy imports of a job's first dry run, on the meta device only

    current()  # fixes the worker's name before the pool forks


@worker_process_init.connect
def _fresh_connections(**_):
    # Connections made before the fork belong to the parent; a child opens its own, now,
    # while it waits for a job, so that the job's claim need not connect first (a few
    # milliseconds on PostgreSQL). In a thread: a database that is down must not hold up
    # the process's start; the claim then connects (and retries) itself.
    from app.db import get_engine
    from worker import threads
    from worker.identity import current

    threads.apply(current().threads)  # the worker's share of the cores, before any job's kernel
    get_engine().dispose(close=False)
    threading.Thread(target=_connect, name="connect", daemon=True).start()


def _connect() -> None:
    from app.db import get_engine

    try:
        with get_engine().connect():
            pass  # back to this process's pool, open
    except Exception as exc:
        log.warning("could not connect to the database ahead of the next job: %s", exc)


_registrar = None
_reaper = None
_webhooks = None


@worker_ready.connect
def _guard_shutdown_signals(**_):
    # Celery has installed its handlers by now (Worker.on_start); see the function's docstring.
    drain.one_shutdown_signal_at_a_time()


@worker_ready.connect
def _start_reaper(**_):
    """Registers the worker; sweeps once for jobs stranded before it started, then periodically."""
    from worker.reaper import Reaper, sweep
    from worker.registry import Registrar

    global _registrar, _reaper
    drain.clear()
    _registrar = Registrar()
    _registrar.register()  # before the sweep, which routes `device: auto` jobs by who is online
    _registrar.start()
    try:
        sweep(queued_before=utcnow() - timedelta(seconds=10))
    except Exception:
        log.exception("startup sweep of stranded jobs failed")
    _reaper = Reaper()
    _reaper.start()
    _start_webhook_sender()


def _start_webhook_sender() -> None:
    """Sends webhook deliveries from this process (app/webhooks/sender.py), where the reaper runs:
    every deployment has a worker, and its units of work hold forks of the training process off."""
    from app.webhooks.sender import Sender
    from worker import unit_of_work

    global _webhooks
    _webhooks = Sender(run=unit_of_work.run_once)
    _webhooks.start()


class BrokerReturn(bootsteps.StartStopStep):
    """When the consumer is connected again after losing the broker, re-sends at once every
    waiting job whose message was sent before the loss.

    A Redis that restarted without persistence lost those messages; by their age alone
    they would be sent again RESEND_AFTER_SECONDS (300 s) later. Where the broker kept
    them (persistence, or only the connection broke), each job now has two messages: the
    second is dropped in this process before it reaches the training process
    (worker/duplicates.py). Celery stops a consumer's steps when its connection fails and
    starts them again once it has reconnected (kombu retries after 2, 4, 6 ... s, at most 30 s apart).
    """

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.lost_at = None

    def start(self, parent) -> None:
        if self.lost_at is not None and _reaper is not None:
            log.info("connected to the broker again: re-sending the messages sent before it was lost")
            _reaper.sweep_soon(queued_before=self.lost_at)
        self.lost_at = None

    def stop(self, parent) -> None:
        self.lost_at = self.lost_at or utcnow()


celery_app.steps["consumer"].add(BrokerReturn)


@worker_shutting_down.connect
def _drain(**_):
    """SIGTERM: the running job checkpoints and goes back to the queue (worker/drain.py).

    This runs inside the signal handler, once per signal: a file and a flag, no query.
    """
    drain.start_draining()
    if _registrar is not None:
        _registrar.beat_now()  # shows as draining at once: routing stops counting it


@worker_shutdown.connect
def _drained(**_):
    drain.clear()
    if _registrar is not None:
        _registrar.stop()
    if _webhooks is not None:  # a send cut short is sent again once its lease runs out
        _webhooks.stop()
