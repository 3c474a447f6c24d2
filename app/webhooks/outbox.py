"""The outbox: which status changes are webhook events, their payloads, and the delivery rows,
inserted in the transaction that records the change (so a commit is never without its deliveries).

app/jobs/events.py and app/studies/events.py call in here with each status event they append;
the sender (app/webhooks/sender.py) sends the rows later, from a worker. A status change of a
tenant with no webhook for its event type costs one indexed read of the tenant's webhooks.
"""
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Job, Study, Webhook, WebhookDelivery
from app.models.base import new_id, utcnow

# A job's or a study's status -> the event type its webhooks are sent.
JOB_EVENTS = {"running": "job.running", "retrying": "job.retrying", "succeeded": "job.succeeded",
              "failed": "job.failed", "cancelled": "job.cancelled", "pruned": "job.pruned"}
STUDY_EVENTS = {"completed": "study.completed", "cancelled": "study.cancelled"}
EVENT_TYPES = (*JOB_EVENTS.values(), *STUDY_EVENTS.values())
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def _subscribed(db_session: Session, tenant_id: str, event_types: set[str]) -> list[Webhook]:
    """The tenant's webhooks that take any of ``event_types`` (a tenant has a handful: filtered here)."""
    if not event_types:
        return []
    hooks = db_session.scalars(select(Webhook).where(Webhook.tenant_id == tenant_id)).all()
    return [h for h in hooks if event_types & set(h.events)]


def _add(db_session: Session, hooks: list[Webhook], event_type: str, data: dict[str, Any]) -> None:
    now = utcnow()
    payload = {"type": event_type, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": data}
    db_session.add_all([WebhookDelivery(id=new_id("msg"), webhook_id=h.id, event_type=event_type, payload=payload,
                                        status=PENDING, attempts=0, next_attempt_at=now, created_at=now)
                        for h in hooks if event_type in h.events])


def record_job_events(*, db_session: Session, job_id: str, tenant_id: str, statuses: list[dict]) -> None:
    """Adds a delivery per subscribed webhook for each of a job's status events (their data) that is one."""
    types = {JOB_EVENTS[s["status"]] for s in statuses if s.get("status") in JOB_EVENTS}
    hooks = _subscribed(db_session, tenant_id, types)
    if not hooks:
        return
    job = db_session.execute(select(Job.id, Job.name, Job.labels, Job.status, Job.error, Job.study_id, Job.variant,
                                    Job.attempts, Job.epoch, Job.step, Job.total_steps, Job.latest_metrics,
                                    Job.created_at, Job.started_at, Job.finished_at).where(Job.id == job_id)).one()
    for status in statuses:
        if status.get("status") in JOB_EVENTS:
            _add(db_session, hooks, JOB_EVENTS[status["status"]], job_data(job, status))


def _iso(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def job_data(job, status: dict) -> dict[str, Any]:
    """A job event's data: what the job is, how it ended or moved, its last epoch's metrics, and links."""
    path = f"/v1/jobs/{job.id}"
    links = {"job": path, "metrics": f"{path}/metrics", "events": f"{path}/events"}
    if status["status"] == "succeeded":
        links["weights"] = f"{path}/weights"
    details = {k: v for k, v in status.items() if k != "status"}  # attempt, worker, error, reason
    details.setdefault("error", job.error if status["status"] in ("failed", "pruned") else None)
    return {"id": job.id, "name": job.name, "labels": job.labels or {}, "status": status["status"], **details,
            "study_id": job.study_id, "variant": job.variant, "attempts": job.attempts,
            "progress": {"epoch": job.epoch, "step": job.step, "total_steps": job.total_steps},
            "metrics": job.latest_metrics, "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at), "links": links}


def record_study_events(*, db_session: Session, study_id: str, tenant_id: str, statuses: list[dict]) -> None:
    """Adds a delivery per subscribed webhook for each of a study's own status events that is one."""
    types = {STUDY_EVENTS[s["status"]] for s in statuses if s.get("status") in STUDY_EVENTS}
    hooks = _subscribed(db_session, tenant_id, types)
    if not hooks:
        return
    study = db_session.execute(select(Study.id, Study.name, Study.labels, Study.planned, Study.created_at,
                                      Study.finished_at).where(Study.id == study_id)).one()
    members = dict(db_session.execute(select(Job.status, func.count()).where(Job.study_id == study_id)
                                      .group_by(Job.status)).all())
    path = f"/v1/studies/{study.id}"
    for status in statuses:
        if status.get("status") in STUDY_EVENTS:
            _add(db_session, hooks, STUDY_EVENTS[status["status"]], {
                "id": study.id, "name": study.name, "labels": study.labels or {}, "status": status["status"],
                "planned": study.planned, "members": members, "created_at": _iso(study.created_at),
                "finished_at": _iso(study.finished_at),
                "links": {"study": path, "curves": f"{path}/curves", "jobs": f"/v1/jobs?study_id={study.id}"}})
