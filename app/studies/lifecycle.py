"""A study's life cycle, its one owner: running until every member has ended, or cancelled.

A member's own status belongs to app/jobs/lifecycle.py; here only the study's. Each move is
one conditional UPDATE and its status event, in the caller's transaction; nothing else
writes ``studies.status``. Functions take the caller's session and never commit.
"""
from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.errors import ApiError
from app.models import Study
from app.models.base import utcnow
from app.studies import events


class StudyStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"  # every member ended (succeeded, failed or pruned)
    CANCELLED = "cancelled"


TERMINAL = frozenset({StudyStatus.COMPLETED, StudyStatus.CANCELLED})
# name: (sources, target). create has no source: a new study.
TRANSITIONS = {
    "create": (frozenset(), StudyStatus.RUNNING),
    "complete": (frozenset({StudyStatus.RUNNING}), StudyStatus.COMPLETED),
    "cancel": (frozenset({StudyStatus.RUNNING}), StudyStatus.CANCELLED),
}


def create(*, db_session: Session, study: Study) -> None:
    """Adds a new study, running, with its first event."""
    study.status = TRANSITIONS["create"][1]
    study.last_event_id = 0
    db_session.add(study)
    db_session.flush()
    events.append(db_session=db_session, study_id=study.id, events=[("status", {"status": study.status})])


def _move(db_session: Session, study_id: str, name: str) -> bool:
    sources, status = TRANSITIONS[name]
    moved = db_session.execute(
        update(Study).where(Study.id == study_id, Study.status.in_(sources))
        .values(status=status, finished_at=utcnow()).execution_options(synchronize_session=False)
    ).rowcount
    if moved:
        events.append(db_session=db_session, study_id=study_id, events=[("status", {"status": status})])
    return bool(moved)


def complete(*, db_session: Session, study_id: str) -> bool:
    """Ends a running study whose members have all ended; False when it was no longer running."""
    return _move(db_session, study_id, "complete")


def cancel(*, db_session: Session, study: Study) -> None:
    """Ends a running study as cancelled (its members are cancelled by the caller); 409 once it ended."""
    if not _move(db_session, study.id, "cancel"):
        db_session.refresh(study)
        raise ApiError(409, f"study is already {study.status}; only a running study can be cancelled")
    db_session.refresh(study)
