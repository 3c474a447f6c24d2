"""Thin task wrappers: IDs in, the runner does the work."""
from worker.celery_app import celery_app


@celery_app.task(name="jobs.train")
def train(job_id: str) -> None:
    from worker.runner import run_job

    run_job(job_id)
