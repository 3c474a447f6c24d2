"""Publishing jobs' messages, and the bookkeeping of when each waiting job's message was sent."""
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from app.db import session_scope
from app.jobs import repository
from app.jobs.lifecycle import WAITING
from app.logs import job_context
from app.models import Job
from app.models.base import utcnow
from app.models.job import UNSENT
from app.queue import enqueue_training

log = logging.getLogger(__name__)


def publish(sends: list[tuple[str, str]]) -> list[str]:
    """Publishes each (job id, queue); returns the ids whose message was not published.

    Those jobs are stored, waiting, and the caller marks them unsent (mark_unsent): every
    worker's reaper sends them again at its next sweep (REAPER_INTERVAL_SECONDS), so a job
    submitted while the broker was down starts soon after it is back, not
    RESEND_AFTER_SECONDS later. After one failure the rest are not tried: each try costs
    the publish's retries, and the broker is most likely down for them too.
    """
    for i, (job_id, queue) in enumerate(sends):
        with job_context(job_id=job_id):  # the broker's own retry lines too
            try:
                enqueue_training(job_id, queue)
            except Exception:
                log.exception("could not enqueue job %s; it stays waiting and is sent again", job_id)
                return [job for job, _ in sends[i:]]
    return []


def send(sends: list[tuple[str, str]], *, run: Callable | None = None) -> list[str]:
    """Publishes, then marks the jobs not published unsent; returns their ids.

    ``run(work, **kwargs)`` runs that write in a unit of work: the worker passes its own
    (worker/unit_of_work.run_once); by default, one session_scope.
    """
    unsent = publish(sends)
    if unsent:
        try:
            (run or _in_session_scope)(mark_unsent, job_ids=unsent)
        except Exception:
            # The database is down too: the jobs are still sent again, RESEND_AFTER_SECONDS
            # after their last message.
            log.exception("could not mark jobs %s unsent", unsent)
    return unsent


def _in_session_scope(work: Callable, **kwargs):
    with session_scope() as session:
        return work(db_session=session, **kwargs)


def mark_unsent(*, db_session: Session, job_ids: list[str]) -> None:
    """Waiting jobs whose message the broker did not take: the next sweep sends them again."""
    db_session.execute(update(Job).where(Job.id.in_(job_ids), Job.status.in_(WAITING))
                       .values(enqueued_at=UNSENT).execution_options(synchronize_session=False))


def resend_due(*, db_session: Session, before: datetime) -> list[str]:
    """Waiting jobs whose message was last sent before ``before``, or never; marks them sent now.

    The broker may have lost the message (a Redis restart without persistence, a lost
    filesystem spool): sending again is safe because only one delivery wins the claim. An
    unsent job stays marked unsent (and says so to its owner) until mark_sent, once its
    message is published.
    """
    ids = repository.waiting_sent_before(db_session=db_session, before=before)
    if ids:
        sent = func.coalesce(Job.enqueued_at, Job.created_at)
        db_session.execute(update(Job).where(Job.id.in_(ids), sent != UNSENT).values(enqueued_at=utcnow())
                           .execution_options(synchronize_session=False))
    return ids


def mark_sent(*, db_session: Session, job_ids: list[str]) -> None:
    """Unsent jobs among these were published now."""
    db_session.execute(update(Job).where(Job.id.in_(job_ids), Job.enqueued_at == UNSENT)
                       .values(enqueued_at=utcnow()).execution_options(synchronize_session=False))
