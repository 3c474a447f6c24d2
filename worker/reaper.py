"""Finds jobs whose worker died and hands them back to the queue (or gives them up)."""
import logging
import threading
from datetime import datetime

from app.config import get_settings
from app.db import get_session_factory
from app.jobs import repository
from app.queue import enqueue_training

log = logging.getLogger(__name__)


def sweep(*, queued_before: datetime | None = None) -> list[str]:
    """One pass: fail lost jobs out of attempts, queue the other lost ones again, and
    (at startup) re-send jobs queued since before ``queued_before``.

    A duplicate message is harmless: only one delivery wins the atomic claim.
    """
    max_attempts = get_settings().max_attempts
    with get_session_factory()() as session:
        given_up = repository.give_up_lost(db_session=session, max_attempts=max_attempts)
        job_ids = repository.requeue_lost(db_session=session, max_attempts=max_attempts)
        if queued_before:
            job_ids += repository.queued_before(db_session=session, before=queued_before)
        session.commit()
    job_ids = list(dict.fromkeys(job_ids))
    for job_id in job_ids:
        enqueue_training(job_id)
    if given_up or job_ids:
        log.info("reaper: gave up %d job(s), re-enqueued %d", given_up, len(job_ids))
    return job_ids


class Reaper(threading.Thread):
    """Sweeps every REAPER_INTERVAL_SECONDS in the worker's main process."""

    def __init__(self):
        super().__init__(daemon=True, name="trainyard-reaper")
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(get_settings().reaper_interval_seconds):
            try:
                sweep()
            except Exception:
                log.exception("reaper sweep failed")
