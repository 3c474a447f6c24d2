"""PostgreSQL LISTEN for the stream hub: a commit that appends job events wakes that job's tail.

It knows nothing of the hub (app/jobs/stream.py): it calls back with a job id per note, and
once per (re)connection for anything committed while it was not listening.
"""
import asyncio
import logging
from collections.abc import Callable

import psycopg

from app.config import get_settings
from app.db import libpq_url
from app.jobs.events import CHANNEL

log = logging.getLogger(__name__)


async def listen(*, wake: Callable[[str], None], wake_all: Callable[[], None]) -> None:
    """Runs for the life of the process, reconnecting after a lost connection."""
    url = libpq_url(get_settings().resolved_database_url)
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                # Anything committed while we were not listening: read it now.
                wake_all()
                async for note in conn.notifies():
                    wake(note.payload)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("LISTEN %s lost; tails poll until it is back", CHANNEL)
            await asyncio.sleep(1)
