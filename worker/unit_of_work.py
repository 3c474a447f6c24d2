"""The worker's unit of work: every database read and write a worker makes runs through it.

``run(work, **kwargs)`` calls ``work(db_session=session, **kwargs)`` in one session, commits
on success and rolls back on error. While the database is unreachable (a restart, a failover:
an OperationalError) it runs ``work`` again in a fresh session, with backoff, for up to
DB_RETRY_SECONDS, so a blip pauses training instead of losing points or an end. ``work`` is
therefore written to be re-run: it does its writes through the session it is given, and
nothing else. ``run_once`` is the same unit of work without the retries, for the loops that
try again on their own schedule (heartbeats, sweeps) and must not hold up a shutdown.
"""
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from app.config import get_settings
from app.db import session_scope

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_DELAY_SECONDS, MAX_DELAY_SECONDS = 0.2, 5.0


class ForkGuard:
    """Holds a fork off while any thread of this process is inside a unit of work.

    SQLite is not fork-safe: a worker forks a training process while its registry and reaper
    threads use the database, and a fork taken while one of them was inside SQLite left the
    child with SQLite's allocator mutex locked, so its first connect hung for good (seen in
    tests/e2e/test_worker_lost.py; py-spy: claim -> sqlite3Malloc -> pthread_mutex_lock).
    """

    def __init__(self):
        self._cond, self._inside = threading.Condition(), 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._cond:  # waits while a fork holds the lock
            self._inside += 1
        try:
            yield
        finally:
            with self._cond:
                self._inside -= 1
                self._cond.notify_all()

    def before_fork(self) -> None:
        self._cond.acquire()  # held through the fork: no thread enters meanwhile
        while self._inside:
            self._cond.wait()

    def after_fork_in_parent(self) -> None:
        self._cond.release()

    def after_fork_in_child(self) -> None:
        self._cond, self._inside = threading.Condition(), 0  # the child has no other thread


FORK_GUARD = ForkGuard()
os.register_at_fork(before=FORK_GUARD.before_fork, after_in_parent=FORK_GUARD.after_fork_in_parent,
                    after_in_child=FORK_GUARD.after_fork_in_child)


def run_once(work: Callable[..., T], /, **kwargs) -> T:
    """Runs ``work(db_session=..., **kwargs)`` in one unit of work (the API's session_scope); returns its result."""
    with FORK_GUARD.held(), session_scope() as session:
        return work(db_session=session, **kwargs)


def run(work: Callable[..., T], /, **kwargs) -> T:
    """run_once, run again while the database is unreachable, for up to DB_RETRY_SECONDS."""
    deadline, delay = time.monotonic() + get_settings().db_retry_seconds, FIRST_DELAY_SECONDS
    while True:
        try:
            return run_once(work, **kwargs)
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            log.warning("database unreachable; retrying %s in %.1f s", getattr(work, "__name__", work), delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_SECONDS)
