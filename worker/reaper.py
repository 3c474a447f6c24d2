"""Finds jobs whose worker died and queues them again (or gives them up); publishes the worker's messages; removes expired uploads."""
import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.config import get_settings
from app.jobs import lifecycle, sending
from app.models.base import utcnow
from app.storage import get_store
from app.studies import conductor
from app.uploads import service as uploads
from app.workers import routing
from worker import unit_of_work

log = logging.getLogger(__name__)


def sweep(*, queued_before: datetime | None = None) -> list[str]:
    """One pass: fail lost jobs out of attempts, queue the other lost ones again, and re-send
    waiting jobs whose message was sent before ``queued_before`` (default: RESEND_AFTER_SECONDS
    ago; at a worker's start, a few seconds ago).

    A duplicate message is harmless: only one delivery wins the atomic claim. The sweep's
    writes are not retried while the database is down: the next sweep tries again.
    """
    settings = get_settings()
    before = queued_before or utcnow() - timedelta(seconds=settings.resend_after_seconds)
    given_up, sends = unit_of_work.run_once(_collect, max_attempts=settings.max_attempts, before=before)
    unsent = send(sends)
    job_ids = [job_id for job_id, _ in sends if job_id not in unsent]
    if job_ids:
        unit_of_work.run_once(sending.mark_sent, job_ids=job_ids)
    if given_up or job_ids:
        log.info("reaper: gave up %d job(s), re-enqueued %d", given_up, len(job_ids))
    sweep_uploads()
    return job_ids


def sweep_uploads() -> int:
    """Removes abandoned uploads (UPLOAD_EXPIRY_HOURS without a part) and their parts; how many.

    Its own unit of work, after the jobs' sweep: a store that fails here never holds up a lost job."""
    try:
        removed = unit_of_work.run_once(uploads.remove_expired, store=get_store())
    except Exception:
        log.exception("reaper: could not remove expired uploads; the next sweep will")
        return 0
    if removed:
        log.info("reaper: removed %d expired upload(s) and their parts", removed)
    return removed


def _collect(*, db_session: Session, max_attempts: int,
             before: datetime) -> tuple[int, list[tuple[str, str]]]:
    """Gives up and requeues the lost jobs; returns how many were given up, and the (job, queue) to send."""
    given_up = lifecycle.give_up_lost(db_session=db_session, max_attempts=max_attempts)
    job_ids = lifecycle.requeue_lost(db_session=db_session, max_attempts=max_attempts)
    job_ids += sending.resend_due(db_session=db_session, before=before)
    sends = routing.queues_for_resend(db_session=db_session, job_ids=list(dict.fromkeys(job_ids)))
    # Every running study, in case the process that ended one of its members died before advancing it.
    for study_id in conductor.running_ids(db_session=db_session):
        sends += conductor.advance(db_session=db_session, study_id=study_id)
    return given_up, sends


def advance_study(study_id: str) -> None:
    """Advances one study (a member of it just ended) and sends the members it releases."""
    try:
        send(unit_of_work.run(conductor.advance, study_id=study_id))
    except Exception:
        log.exception("could not advance study %s; the next reaper sweep will", study_id)


def send(sends: list[tuple[str, str]]) -> list[str]:
    """Publishes each (job id, queue) from the worker; returns the ids not published, marked unsent."""
    return sending.send(sends, run=unit_of_work.run_once)


class Reaper(threading.Thread):
    """Sweeps every REAPER_INTERVAL_SECONDS in the worker's main process, and at once when asked."""

    def __init__(self):
        super().__init__(daemon=True, name="trainyard-reaper")
        self.stopped = threading.Event()
        self._wake = threading.Event()
        self._resend_before: datetime | None = None

    def sweep_soon(self, *, queued_before: datetime) -> None:
        """Sweeps now, re-sending the waiting jobs whose message was sent before ``queued_before``."""
        earlier = self._resend_before
        self._resend_before = queued_before if earlier is None else max(earlier, queued_before)
        self._wake.set()

    def run(self) -> None:
        while not self.stopped.is_set():
            self._wake.wait(get_settings().reaper_interval_seconds)
            self._wake.clear()
            before, self._resend_before = self._resend_before, None
            if self.stopped.is_set():
                return
            try:
                sweep(queued_before=before)
            except Exception:
                log.exception("reaper sweep failed")
