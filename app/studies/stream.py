"""A study's live events for SSE: its log (member status changes, its own status) and leaderboards.

A watcher gets the leaderboard as it is now, then every event after its Last-Event-ID from
the study's log, a fresh ``leaderboard`` whenever a member has ended, and at the study's end
an ``end`` event with the final status and leaderboard. Leaderboards carry no id: they are
computed from the stored histories, not logged, so a resumed stream recomputes them rather
than replaying old ones. A study's log is short (a few events per member), so each watcher
polls it; a job's stream (app/jobs/stream.py) shares one tail between watchers because its
log grows with every metric point.
"""
import asyncio
import json
from collections.abc import AsyncIterator

from anyio import to_thread
from sqlalchemy import select
from sse_starlette import ServerSentEvent

from app.config import get_settings
from app.db import session_scope
from app.jobs.lifecycle import TERMINAL as JOB_TERMINAL
from app.models import Study
from app.studies import events, service
from app.studies.lifecycle import TERMINAL

PAGE = 1000


def _encode(kind: str, data: dict, seq: int | None = None) -> bytes:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    return ServerSentEvent(text, event=kind, id=None if seq is None else str(seq)).encode()


def _board(s, study: Study) -> bytes:
    return _encode("leaderboard", service.board(db_session=s, study=study).model_dump(mode="json"))


def read_after(study_id: str, seq: int) -> tuple[bytes, int, bool]:
    """The encoded events after ``seq`` (and a leaderboard when a member ended among them); the last seq;
    whether the study has ended and every event of it is read."""
    with session_scope() as s:
        study = s.scalar(select(Study).where(Study.id == study_id))
        if study is None:
            return _encode("end", {"status": None, "error": "the study no longer exists"}), seq, True
        rows = events.after(db_session=s, study_id=study_id, seq=seq, limit=PAGE)
        chunk = [_encode(r.kind, {**r.data, "time": r.created_at.isoformat()}, r.seq) for r in rows]
        last = rows[-1].seq if rows else seq
        ended = study.status in TERMINAL and len(rows) < PAGE
        if any(r.kind == "member" and r.data.get("status") in JOB_TERMINAL for r in rows) and not ended:
            chunk.append(_board(s, study))
        if ended:
            board = service.board(db_session=s, study=study).model_dump(mode="json")
            chunk.append(_encode("end", {"status": study.status, "leaderboard": board}))
        return b"".join(chunk), last, ended


def snapshot(study_id: str) -> bytes:
    with session_scope() as s:
        study = s.scalar(select(Study).where(Study.id == study_id))
        return _board(s, study) if study is not None else b""


async def watch(study_id: str, after: int) -> AsyncIterator[bytes]:
    """The study's events after ``after``, live, ending with an ``end`` event."""
    first = await to_thread.run_sync(snapshot, study_id)
    if first:
        yield first
    poll = get_settings().stream_poll_seconds
    while True:
        chunk, after, ended = await to_thread.run_sync(read_after, study_id, after)
        if chunk:
            yield chunk
        if ended:
            return
        await asyncio.sleep(poll)
