"""Live job events for SSE: one shared tail per watched job, fanned out to its watchers.

The database is the source of truth. Each API process keeps at most one tail per job; a
tail reads new events once per wake-up and hands the encoded bytes to every watcher, so
100 watchers of a job cost one query per wake-up, not 100. A tail wakes on PostgreSQL
NOTIFY (sent at commit by app/jobs/events.py) with a slow poll as a safety net, or on a
short poll on SQLite, where there is nothing to listen to.

A watcher first joins the tail (from then on it receives everything the tail reads),
then replays the stored events after its Last-Event-ID from the database, then takes the
tail's feed, dropping what the replay already sent: no gap, no duplicate.
"""
import asyncio
import json
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

from anyio import to_thread
from sqlalchemy import select
from sse_starlette import ServerSentEvent

from app.config import get_settings
from app.db import session_scope
from app.jobs import events
from app.jobs.lifecycle import TERMINAL
from app.jobs.listener import listen
from app.models import Job, JobEvent

log = logging.getLogger(__name__)
PAGE = 1000
QUEUE_SIZE = 2000


@dataclass(frozen=True)
class Item:
    seq: int
    payload: bytes  # the encoded SSE event, encoded once for every watcher


@dataclass(frozen=True)
class End:
    payload: bytes


RESYNC = object()  # put in a lagging watcher's queue: re-read from the database


def encode(row: JobEvent) -> Item:
    data = {**row.data, "time": row.created_at.isoformat()}
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return Item(row.seq, ServerSentEvent(text, event=row.kind, id=str(row.seq)).encode())


def end_event(job: tuple[str, str | None] | None) -> End:
    status, error = job if job else (None, "the job no longer exists")
    text = json.dumps({"status": status, "error": error}, separators=(",", ":"))
    return End(ServerSentEvent(text, event="end").encode())


def read_after(job_id: str, seq: int) -> tuple[tuple[str, str | None] | None, list[Item]]:
    """The job's (status, error), read first, then up to PAGE events after ``seq``.

    Status before events: a terminal status is committed with its event, so if the
    status read says terminal, the event read that follows sees every event there is.
    """
    with session_scope() as s:
        job = s.execute(select(Job.status, Job.error).where(Job.id == job_id)).one_or_none()
        rows = events.after(db_session=s, job_id=job_id, seq=seq, limit=PAGE)
        return (tuple(job) if job else None), [encode(r) for r in rows]


def last_seq(job_id: str) -> int:
    with session_scope() as s:
        return events.last_seq(db_session=s, job_id=job_id)


def finished(job: tuple[str, str | None] | None) -> bool:
    return job is None or job[0] in TERMINAL


class Watcher:
    def __init__(self, tail: "Tail"):
        self.tail = tail
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)

    def push(self, item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # A client too slow for the feed: drop its backlog and let it re-read the
            # database from where it is, rather than hold memory without bound.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)
            if isinstance(item, End):
                self.queue.put_nowait(item)


class Tail:
    """Reads one job's new events and fans them out to the watchers in this process."""

    def __init__(self, hub: "Hub", job_id: str):
        self.hub, self.job_id = hub, job_id
        self.watchers: set[Watcher] = set()
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()
        self.cursor = 0
        self.task: asyncio.Task | None = None  # held here so it is not garbage-collected
        self.reads = self.served = 0  # logged at the end: what sharing the tail saved

    async def run(self) -> None:
        try:
            self.cursor = await to_thread.run_sync(last_seq, self.job_id)
        except Exception:
            log.exception("stream tail for %s could not start", self.job_id)
        self.ready.set()
        try:
            while self.watchers:
                self.wake.clear()  # before reading: a wake-up during the read is kept
                try:
                    if await self.read():
                        return
                except Exception:
                    log.exception("stream tail for %s: read failed; retrying", self.job_id)
                try:
                    await asyncio.wait_for(self.wake.wait(), self.hub.poll_seconds)
                except TimeoutError:
                    pass
            self.hub.drop(self)
        finally:
            log.info("stream tail for %s closed: %d reads shared by %d watchers",
                     self.job_id, self.reads, self.served)

    async def read(self) -> bool:
        """Fans out what is new; returns True (tail closed) once the job has ended."""
        while True:
            # Its own threads: live reads never queue behind request handlers (a burst of
            # 100 watchers connecting at once fills the shared pool with auth and replays).
            job, items = await asyncio.get_running_loop().run_in_executor(
                self.hub.readers, read_after, self.job_id, self.cursor)
            self.reads += 1
            for item in items:
                self.cursor = item.seq
                for w in list(self.watchers):
                    w.push(item)
            if len(items) < PAGE:
                break
        if not finished(job):
            return False
        end = end_event(job)
        for w in list(self.watchers):
            w.push(end)
        self.hub.drop(self)  # no await between the last push and the drop
        return True


class Hub:
    """The tails of one API process, keyed by job id."""

    def __init__(self):
        settings = get_settings()
        self.tails: dict[str, Tail] = {}
        self.listening = settings.resolved_database_url.startswith("postgresql")
        self.poll_seconds = (settings.stream_fallback_poll_seconds if self.listening
                             else settings.stream_poll_seconds)
        self.listener: asyncio.Task | None = None
        self.readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="stream-tail")

    def join(self, job_id: str) -> Watcher:
        if self.listening and self.listener is None:
            self.listener = asyncio.get_running_loop().create_task(
                listen(wake=self.wake, wake_all=self.wake_all))
        tail = self.tails.get(job_id)
        if tail is None:
            tail = self.tails[job_id] = Tail(self, job_id)
            tail.task = asyncio.get_running_loop().create_task(tail.run())
        watcher = Watcher(tail)
        tail.watchers.add(watcher)
        tail.served += 1
        return watcher

    def leave(self, watcher: Watcher) -> None:
        watcher.tail.watchers.discard(watcher)
        if not watcher.tail.watchers:
            watcher.tail.wake.set()  # let it notice it is idle and stop

    def drop(self, tail: Tail) -> None:
        if self.tails.get(tail.job_id) is tail:
            del self.tails[tail.job_id]

    def wake(self, job_id: str) -> None:
        tail = self.tails.get(job_id)
        if tail is not None:
            tail.wake.set()

    def wake_all(self) -> None:
        for tail in self.tails.values():
            tail.wake.set()


@lru_cache
def get_hub() -> Hub:
    return Hub()


async def stored(job_id: str, after: int) -> AsyncIterator[list[Item | End]]:
    """Pages of the stored events after ``after``; End last if the job had ended before the read."""
    while True:
        job, items = await to_thread.run_sync(read_after, job_id, after)
        after = items[-1].seq if items else after
        if len(items) < PAGE:
            break
        yield items
    yield [*items, end_event(job)] if finished(job) else items


def take(items: list, last: int) -> tuple[bytes, int, bool]:
    """The payloads of items after ``last``, as one chunk; the new last; whether it ends."""
    chunk = []
    for item in items:
        if isinstance(item, End):
            chunk.append(item.payload)
            return b"".join(chunk), last, True
        if item.seq > last:  # the replay and the feed overlap; send each once
            chunk.append(item.payload)
            last = item.seq
    return b"".join(chunk), last, False


async def watch(job_id: str, after: int) -> AsyncIterator[bytes]:
    """The job's events after ``after``, live, ending with an ``end`` event.

    Events that arrive together leave in one write: with many watchers, one send per
    watcher per wake-up rather than one per event.
    """
    hub = get_hub()
    watcher = hub.join(job_id)
    try:
        await watcher.tail.ready.wait()
        last, source = after, stored(job_id, after)
        while True:
            async for items in source:
                chunk, last, ended = take(items, last)
                if chunk:
                    yield chunk
                if ended:
                    return
            items = [await watcher.queue.get()]
            while not watcher.queue.empty():
                items.append(watcher.queue.get_nowait())
            source = stored(job_id, last) if RESYNC in items else _once(items)
    finally:
        hub.leave(watcher)


async def _once(items: list) -> AsyncIterator[list]:
    yield items
