"""Finds jobs whose worker died and hands them back to the queue (or gives them up)."""
import logging
import threading
from datetime import datetime, timedelta

from app.config import get_settings
from app.db import get_session_factory
from app.jobs import repository, sending
from app.models.base import utcnow
from app.workers import routing

log = logging.getLogger(__name__)


def sweep(*, queued_before: datetime | None = None) -> list[str]:
    """One pass: fail lost jobs out of attempts, queue the other lost ones again, and re-send
    waiting jobs whose message was sent before ``queued_before`` (default: RESEND_AFTER_SECONDS
    ago; at a worker's start, a few seconds ago).

    A duplicate message is harmless: only one delivery wins the atomic claim.
    """
    settings = get_settings()
    before = queued_before or utcnow() - timedelta(seconds=settings.resend_after_seconds)
    with get_session_factory()() as session:
        given_up = repository.give_up_lost(db_session=session, max_attempts=settings.max_attempts)
        job_ids = repository.requeue_lost(db_session=session, max_attempts=settings.max_attempts)
        job_ids += repository.resend_due(db_session=session, before=before)
        sends = routing.queues_for_resend(db_session=session, job_ids=list(dict.fromkeys(job_ids)))
        session.commit()
    unsent = sending.send(sends)
    job_ids = [job_id for job_id, _ in sends if job_id not in unsent]
    if job_ids:
        with get_session_factory()() as session:
            repository.mark_sent(db_session=session, job_ids=job_ids)
            session.commit()
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
