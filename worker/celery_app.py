"""The Celery app the worker runs: the API's producer config plus the task module."""
import logging
from datetime import timedelta

from celery.signals import worker_process_init, worker_ready

from app.config import get_settings
from app.queue import make_celery

log = logging.getLogger(__name__)

celery_app = make_celery(get_settings())
celery_app.conf.update(
    include=["worker.tasks"],
    # Training runs in a child process: a crash or OOM kill there leaves the worker up.
    worker_concurrency=1,
    worker_max_tasks_per_child=None,
    worker_hijack_root_logger=False,
)


@worker_process_init.connect
def _fresh_connections(**_):
    # Connections made before the fork belong to the parent; a child opens its own.
    from app.db import get_engine

    get_engine().dispose(close=False)
    # Import torch and the trainer now, not when the first job arrives.
    import worker.runner  # noqa: F401


@worker_ready.connect
def _sweep_stranded_jobs(**_):
    """Re-enqueues jobs no worker is on, so a message the broker lost never strands a job.

    A duplicate message is harmless: only one delivery wins the atomic claim.
    """
    from app.db import get_session_factory
    from app.jobs.repository import stranded
    from app.models.base import utcnow
    from app.queue import enqueue_training

    try:
        with get_session_factory()() as session:
            job_ids = stranded(db_session=session, queued_before=utcnow() - timedelta(seconds=10))
        for job_id in job_ids:
            enqueue_training(job_id)
        if job_ids:
            log.info("re-enqueued %d stranded job(s)", len(job_ids))
    except Exception:
        log.exception("startup sweep of stranded jobs failed")
