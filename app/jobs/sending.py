"""Publishing jobs' messages, and what happens when the broker does not take one."""
import logging

from app.db import session_scope
from app.jobs import repository
from app.queue import enqueue_training

log = logging.getLogger(__name__)


def send(sends: list[tuple[str, str]]) -> list[str]:
    """Publishes each (job id, queue); returns the ids whose message was not published.

    Those jobs are stored, waiting, and marked unsent: every worker's reaper sends them
    again at its next sweep (REAPER_INTERVAL_SECONDS), so a job submitted while the broker
    was down starts soon after it is back, not RESEND_AFTER_SECONDS later. After one
    failure the rest are not tried: each try costs the publish's retries, and the
    broker is most likely down for them too.
    """
    for i, (job_id, queue) in enumerate(sends):
        try:
            enqueue_training(job_id, queue)
        except Exception:
            log.exception("could not enqueue job %s; it stays waiting and is sent again", job_id)
            unsent = [job for job, _ in sends[i:]]
            _mark_unsent(unsent)
            return unsent
    return []


def _mark_unsent(job_ids: list[str]) -> None:
    try:
        with session_scope() as session:
            repository.mark_unsent(db_session=session, job_ids=job_ids)
    except Exception:
        # The database is down too: the jobs are still sent again, RESEND_AFTER_SECONDS
        # after their last message.
        log.exception("could not mark jobs %s unsent", job_ids)
