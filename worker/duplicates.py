"""Recognises a duplicate delivery of a job's message in the worker's main process, before the pool.

The broker delivers at least once, and the reaper sends a waiting job's message again when
it may be lost (worker/reaper.py), so a job's message can arrive after the job was trained.
Handed to the training process, such a message cost that process's time and, with a
process per job, a process start. Here the worker's main process reads whether the job is
claimable (app/jobs/lifecycle.claimable) as the message arrives, and acknowledges the
message without running it when it is not. The claim in the training process still decides
(worker/runner.py): a job claimed elsewhere after this read is skipped there.
"""
import logging

from celery.worker.strategy import default

from app.jobs import lifecycle
from worker import unit_of_work

log = logging.getLogger(__name__)


def dropped(job_id: str) -> str:
    """What the worker logs for a message it dropped here."""
    return f"job {job_id} is not waiting; its message was dropped before the training process"


def skip_unclaimable(task, app, consumer, **kwargs):
    """Celery's default task strategy, behind a check that the message's job is claimable."""
    handle = default(task, app, consumer, **kwargs)

    def on_message(message, body, ack, reject, callbacks, **options):
        job_id = _job_id(message)
        if job_id is not None and not _claimable(job_id):
            log.info(dropped(job_id))
            ack(log, consumer.connection_errors)  # as Celery's Request acknowledges: ack_log_error
            return None
        return handle(message, body, ack, reject, callbacks, **options)

    return on_message


def _job_id(message) -> str | None:
    """The job id a jobs.train message carries (Celery's protocol 2: [args, kwargs, embed])."""
    try:
        args = message.decode()[0]
        return args[0] if isinstance(args[0], str) else None
    except Exception:  # not ours to judge: Celery reports a malformed message itself
        return None


def _claimable(job_id: str) -> bool:
    try:
        # Once, not retried: a database that is down must not stop the consumer; the
        # training process's claim retries (worker/unit_of_work.run).
        return unit_of_work.run_once(lifecycle.claimable, job_id=job_id)
    except Exception:
        log.warning("could not read whether job %s is waiting; its message goes to the training process",
                    job_id, exc_info=True)
        return True
