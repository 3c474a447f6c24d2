"""The Celery app as the API sees it: a producer that enqueues by task name."""
from functools import lru_cache

from celery import Celery

from app import broker_folder
from app.config import Settings, get_settings

TRAIN_TASK = "jobs.train"


def make_celery(settings: Settings) -> Celery:
    url = settings.resolved_broker_url
    if url.startswith("filesystem"):
        broker_folder.register()
        url = url.replace("filesystem", broker_folder.ALIAS, 1)
    app = Celery("trainyard", broker=url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # the database, not a result backend, holds outcomes
        task_acks_late=True,  # a message is acked after the job ran, not when received
        # A training process killed mid-job (OOM killer, SIGKILL) has its message acked, not
        # handed back: an immediate redelivery would find the job's lease still fresh and do
        # nothing (while costing a process start); the reaper re-sends it once the lease expires.
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,  # a worker holds one training job, never a backlog
        task_default_queue=settings.queue_for("cpu"),
        broker_connection_retry_on_startup=True,
        # A broker that is down must not hang POST /v1/jobs: the job is stored
        # and the worker's startup sweep re-enqueues it.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2},
        # Redis redelivers an unacked message after visibility_timeout: it must outlast
        # the longest job, or a long job is delivered again while it trains.
        broker_transport_options={"visibility_timeout": settings.max_job_seconds + 3600},
    )
    if settings.resolved_broker_url.startswith("filesystem"):
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        app.conf.broker_transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.05,
        }
    return app


@lru_cache
def get_celery() -> Celery:
    return make_celery(get_settings())


def enqueue_training(job_id: str, kind: str) -> None:
    """Sends the job to the queue of its kind of worker (jobs.queue: gpu or cpu)."""
    get_celery().send_task(TRAIN_TASK, args=[job_id], queue=get_settings().queue_for(kind))


def broker_reachable() -> bool:
    try:
        with get_celery().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False
