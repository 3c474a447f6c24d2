"""Thin task wrappers: IDs in, the runner does the work."""
from worker.celery_app import celery_app


# Strategy: the worker's main process drops a message whose job is not waiting (a duplicate)
# before it reaches the training process (worker/duplicates.py).
@celery_app.task(name="jobs.train", Strategy="worker.duplicates:skip_unclaimable")
def train(job_id: str) -> None:
    from worker.runner import run_job

    run_job(job_id)
