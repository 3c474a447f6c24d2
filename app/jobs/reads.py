"""GET /v1/jobs/{id}: the jobs of concurrent requests are read together.

A query's round trip costs the API more CPU (on PostgreSQL psycopg, the pool and the
loop's waits, about 100 us; on SQLite a trip to a thread and SQLAlchemy's execution) than
decoding a job's rows. So requests do not each run their own: a request
joins the next query to start, which reads every job asked for since the previous one
started, each (tenant, job) pair once, and each body is built once for all who asked.
One query runs at a time (``queries``); the rest wait for the next. Under one request
at a time this is the plain one-query read. A second query at once only made the
batches smaller: 64 connections reading 32 jobs made 4 000-4 300 reads/s with two,
4 900-5 100 with one.

A request never takes the result of a query that was already under way when it came:
that query may predate it (a client that has just cancelled its job must read it
cancelled). Each request's query starts after the request arrived.

On PostgreSQL the event loop runs the query itself, through a small psycopg pool of its
own; on SQLite (no async driver here) one thread runs it, in a limiter of READ_THREADS.

A waiting job, a job not found (a 404, or another tenant's job) and a database error give
None: the route then reads in a thread, which gives the waiting reason, the 404, or a 503.
"""
import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import lru_cache
from itertools import islice

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.jobs import repository, service
from app.jobs.lifecycle import WAITING

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (tenant id, job id)
Fetch = Callable[[list[Key]], Awaitable[dict[Key, list]]]
DATABASE_ERRORS = (psycopg.Error, PoolTimeout, SQLAlchemyError)
# A few threads keep SQLite busy; more contend for the interpreter lock with the event
# loop and each other, which raised the read's CPU cost and its p99.
READ_THREADS = 4


@lru_cache
def read_limiter() -> anyio.CapacityLimiter:
    return anyio.CapacityLimiter(READ_THREADS)


def fetch_on_loop(pool: AsyncConnectionPool) -> Fetch:
    """Reads on the event loop (PostgreSQL)."""
    return lambda keys: repository.read_many_async(pool=pool, keys=keys)


def fetch_in_thread(engine: Engine) -> Fetch:
    """Reads in one of the READ_THREADS threads (SQLite)."""
    def read(keys: list[Key]) -> dict[Key, list]:
        with engine.connect() as conn:
            return repository.read_many(conn=conn, keys=keys)

    return lambda keys: anyio.to_thread.run_sync(read, keys, limiter=read_limiter())


class JobReader:
    def __init__(self, fetch: Fetch, queries: int = 1, batch: int = 100):
        self.fetch, self.queries, self.batch = fetch, queries, batch
        self._pending: dict[Key, list[asyncio.Future]] = {}
        self._running = 0
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    async def read(self, tenant_id: str, job_id: str) -> str | None:
        """The job's body (JSON), or None where the thread's path must answer."""
        future = asyncio.get_running_loop().create_future()
        self._pending.setdefault((tenant_id, job_id), []).append(future)
        if self._running < self.queries:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _run(self) -> None:
        try:
            while self._pending:
                batch = {key: self._pending.pop(key) for key in list(islice(self._pending, self.batch))}
                try:
                    bodies = await self._query(list(batch))
                except Exception as exc:  # a bug: each request of the batch answers 500, as before
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
            self._running -= 1

    async def _query(self, keys: list[Key]) -> dict[Key, str]:
        try:
            found = await self.fetch(keys)
        except DATABASE_ERRORS as exc:
            log.warning("reading %d jobs together failed (%s); reading them one by one", len(keys), exc)
            return {}
        return {key: service.from_rows(rows).model_dump_json()
                for key, rows in found.items() if rows[0].status not in WAITING}


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
