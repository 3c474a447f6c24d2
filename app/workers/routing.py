"""Which kind of worker a job waits for, and why a waiting job waits.

A job asking for ``device: cuda`` or mixed precision waits for a GPU worker, however long
that takes; ``device: cpu`` for a CPU worker; ``device: auto`` goes to the GPU queue when a
GPU worker is online at submission, else to the CPU queue (and is routed again when its
message is re-sent, e.g. when a worker starts).

``training.devices: N`` on GPUs waits in the queue "gpuN", which only workers that own at least
N GPUs consume (queues_of), so a worker with fewer never receives it. On the CPU any CPU worker
runs N gloo ranks: the "cpu" queue.
"""
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.jobs.lifecycle import WAITING, JobStatus
from app.ml.spec import JobSpec
from app.models import Job
from app.models.job import UNSENT
from app.quotas import service as quotas
from app.workers import repository

LABEL = {"gpu": "GPU", "cpu": "CPU"}
UNSENT_REASON = "waiting: the queue's broker is unreachable; the job is sent once it is back"


def needs_gpu(spec: JobSpec) -> bool:
    return spec.training.device == "cuda" or spec.training.precision != "fp32"


def gpu_queue(devices: int) -> str:
    """The queue of a GPU job that trains on ``devices`` GPUs (job.queue, 8 characters at most)."""
    return "gpu" if devices == 1 else f"gpu{devices}"


def gpus_of(queue: str) -> int:
    """How many GPUs a job of a GPU queue waits for."""
    return int(queue[3:] or 1)


def queues_of(kind: str, devices: int) -> list[str]:
    """The queues a worker consumes: a worker with K GPUs takes jobs for 1 to K of them."""
    return ["cpu"] if kind == "cpu" else [gpu_queue(n) for n in range(1, devices + 1)]


def route(*, db_session: Session, spec: JobSpec) -> str:
    n = spec.training.devices
    if needs_gpu(spec):
        return gpu_queue(n)
    if spec.training.device == "cpu":
        return "cpu"
    online = repository.online_count(db_session=db_session, kind="gpu", min_devices=n,
                                     offline_seconds=get_settings().worker_offline_seconds)
    return gpu_queue(n) if online else "cpu"


def waiting_reason(*, db_session: Session, job: Job) -> str | None:
    """Why a queued (or retrying) job is not running yet, in words for its owner."""
    if job.status == JobStatus.HELD:
        return ("held: its study runs a limited number of members at once (parallel); "
                "it is queued when one of them ends")
    if job.status not in WAITING:
        return None
    if (quota_reason := quotas.running_wait_reason(db_session=db_session, job=job)) is not None:
        return quota_reason
    if job.enqueued_at == UNSENT:
        return UNSENT_REASON
    kind = "gpu" if job.queue.startswith("gpu") else job.queue
    label, gpus = LABEL.get(kind, kind), gpus_of(job.queue) if kind == "gpu" else 1
    online = repository.online_count(db_session=db_session, kind=kind, min_devices=gpus,
                                     offline_seconds=get_settings().worker_offline_seconds)
    if not online and gpus > 1:
        return f"waiting: no worker with {gpus} free GPUs"
    if not online:
        return f"waiting: no {label} worker online"
    ahead = repository.waiting_ahead(db_session=db_session, job=job)
    workers = f"{online} {label} worker{'s' if online > 1 else ''}"
    if ahead:
        return f"waiting: {ahead} job{'s' if ahead > 1 else ''} ahead of it for {workers}"
    return f"waiting for {workers} to take it"


def queues_for_resend(*, db_session: Session, job_ids: list[str]) -> list[tuple[str, str]]:
    """(job id, queue) for jobs about to be sent again; ``device: auto`` jobs are routed
    anew, so one waiting for a GPU that went away moves to the CPU queue, and back."""
    if not job_ids:
        return []
    jobs = db_session.scalars(select(Job).where(Job.id.in_(job_ids))).all()
    for job in jobs:
        spec = JobSpec.model_validate(job.spec)
        if not needs_gpu(spec) and spec.training.device == "auto":
            job.queue = route(db_session=db_session, spec=spec)
    return [(job.id, job.queue) for job in jobs]
