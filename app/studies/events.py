"""A study's event log (study_events): its members' status changes and its own, in commit order.

The numbering is a job log's (app/jobs/events.py says why): the next seq comes from
``UPDATE studies SET last_event_id = last_event_id + n ... RETURNING`` under the study row's
lock. A member's status event is appended by the job's own event log (app/jobs/events.py),
in the transaction that moves the member.
"""
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Study, StudyEvent
from app.models.base import utcnow
from app.webhooks import outbox


def append(*, db_session: Session, study_id: str, events: list[tuple[str, dict]]) -> int:
    """Appends (kind, data) events to the study's log; returns the last seq given."""
    if not events:
        return 0
    last, tenant_id = db_session.execute(
        update(Study).where(Study.id == study_id)
        .values(last_event_id=Study.last_event_id + len(events))
        .returning(Study.last_event_id, Study.tenant_id).execution_options(synchronize_session=False)
    ).one()
    first, now = last - len(events) + 1, utcnow()
    db_session.add_all([StudyEvent(study_id=study_id, seq=first + i, kind=kind, data=data, created_at=now)
                        for i, (kind, data) in enumerate(events)])
    db_session.flush()
    statuses = [data for kind, data in events if kind == "status"]  # the study's own, not its members'
    if statuses:  # the webhooks' outbox rows, in this same transaction
        outbox.record_study_events(db_session=db_session, study_id=study_id, tenant_id=tenant_id, statuses=statuses)
    return last


def member_event(*, job_id: str, variant: str | None, member: int | None, data: dict[str, Any]) -> tuple[str, dict]:
    """A member's status event as its study's log records it."""
    return "member", {"job_id": job_id, "member": member, "variant": variant, **data}


def after(*, db_session: Session, study_id: str, seq: int, limit: int) -> list[StudyEvent]:
    return list(db_session.scalars(
        select(StudyEvent).where(StudyEvent.study_id == study_id, StudyEvent.seq > seq)
        .order_by(StudyEvent.seq).limit(limit)).all())
