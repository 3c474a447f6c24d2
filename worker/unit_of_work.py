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
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from app.config import get_settings
from app.db import session_scope

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_DELAY_SECONDS, MAX_DELAY_SECONDS = 0.2, 5.0


def run_once(work: Callable[..., T], /, **kwargs) -> T:
    """Runs ``work(db_session=..., **kwargs)`` in one unit of work (the API's session_scope); returns its result."""
    with session_scope() as session:
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
