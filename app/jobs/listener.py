"""PostgreSQL LISTEN for the stream hub: a commit that appends job events wakes that job's tail."""
import asyncio
import logging
from typing import TYPE_CHECKING

import psycopg

from app.config import get_settings
from app.db import libpq_url
from app.jobs.events import CHANNEL

if TYPE_CHECKING:
    from app.jobs.stream import Hub

log = logging.getLogger(__name__)


async def listen(hub: "Hub") -> None:
    """Runs for the life of the process, reconnecting after a lost connection."""
    url = libpq_url(get_settings().resolved_database_url)
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                # Anything committed while we were not listening: read it now.
                hub.wake_all()
                async for note in conn.notifies():
                    hub.wake(note.payload)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("LISTEN %s lost; tails poll until it is back", CHANNEL)
            await asyncio.sleep(1)
