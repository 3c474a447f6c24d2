"""GET /v1/jobs/{id}'s one fast path: the polls that arrive together share one query.

What it buys (bench/api_throughput.py, docs/benchmarks.md, 2026-12-01): at 64 connections
on a 2-core machine, a query per poll (its session, round trips and three thread trips)
made 0.07-0.13 of /healthz's rate; sharing the query makes 0.36-0.46. Everything else
about the read is the ordinary path's: the same unit of work (app/db.py session_scope), the
same query for both databases (repository.read_with_status_events), the same body
(service.read_many).

A poll joins the next query to start, never one already under way: that query may
predate it, and a client that has just cancelled its job must read it cancelled. Each
query reads every (tenant, job) asked for since the previous one started, each pair once,
in one thread, and builds each body once for everyone who asked. One query runs at a time:
the API's CPU, not the database, is the limit, and a second query at once only made the
batches smaller.
"""
import asyncio
from functools import lru_cache
from itertools import islice

import anyio

from app.db import session_scope
from app.jobs import service

Key = tuple[str, str]  # (tenant id, job id)


class SharedReads:
    def __init__(self, batch: int = 100):
        self.batch = batch
        self._pending: dict[Key, list[asyncio.Future]] = {}
        self._running = False
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    async def read(self, tenant_id: str, job_id: str) -> str | None:
        """The job's body (JSON), or None when the tenant has no such job."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.setdefault((tenant_id, job_id), []).append(future)
        if not self._running:
            self._running = True
            task = loop.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _run(self) -> None:
        try:
            while self._pending:
                batch = {key: self._pending.pop(key) for key in list(islice(self._pending, self.batch))}
                try:
                    bodies = await anyio.to_thread.run_sync(_read_bodies, list(batch))
                except Exception as exc:  # a database error (503) or a bug (500), for each poll of the batch
                    for futures in batch.values():
                        _settle(futures, exception=exc)
                    continue
                except BaseException:  # cancelled: the server is stopping
                    for futures in (*batch.values(), *self._pending.values()):
                        _settle(futures, cancel=True)
                    self._pending.clear()
                    raise
                for key, futures in batch.items():
                    _settle(futures, result=bodies.get(key))
        finally:
            self._running = False


def _read_bodies(keys: list[Key]) -> dict[Key, str]:
    with session_scope() as db:
        return {key: job.model_dump_json() for key, job in service.read_many(db_session=db, keys=keys).items()}


def _settle(futures: list[asyncio.Future], *, result=None, exception: BaseException | None = None,
            cancel: bool = False) -> None:
    for future in futures:
        if future.done():  # its request was cancelled (the client went away)
            continue
        if cancel:
            future.cancel()
        elif exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)


@lru_cache
def shared_reads() -> SharedReads:
    """This process's SharedReads (a dependency: the reads of one event loop)."""
    return SharedReads()
