"""Engine and session factory, shared by the API and the worker."""
from collections.abc import Iterator
from functools import lru_cache

from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings


# A request holds its session's connection from its dependencies' thread to its route's,
# so the pool must outgrow the API's thread pool (40): with fewer connections than
# threads, a burst leaves every thread waiting for a connection held by a waiting request.
POOL_SIZE, POOL_OVERFLOW = 10, 50
# The connection the API's event loop uses itself (PostgreSQL only): the reads clients
# poll run there, without a trip to the thread pool, many jobs to a query, one query at
# a time (app/jobs/reads.py). The API's CPU, not the database, limits the reads: a second
# query at once only made the batches smaller (4 300 reads/s of 32 jobs against 5 100).
READ_POOL_SIZE = 1
# A read waits this long for a connection, then falls back to the thread pool's path.
READ_POOL_TIMEOUT = 2.0


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL (postgresql+psycopg://...) as psycopg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def open_read_pool() -> AsyncConnectionPool | None:
    """An autocommit psycopg pool on the event loop, or None on SQLite (which has no async driver here)."""
    url = get_settings().resolved_database_url
    if not url.startswith("postgresql"):
        return None
    pool = AsyncConnectionPool(libpq_url(url), min_size=1, max_size=READ_POOL_SIZE, open=False,
                               kwargs={"autocommit": True}, name="reads",
                               timeout=READ_POOL_TIMEOUT)
    await pool.open(wait=False)  # the API starts even while the database is down
    return pool


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # WAL lets the API read while the worker writes metrics.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    if settings.resolved_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.resolved_database_url)


@lru_cache
def get_read_engine() -> Engine:
    """The same pool in autocommit: a read of one statement sends no BEGIN and no ROLLBACK."""
    return get_engine().execution_options(isolation_level="AUTOCOMMIT")


@lru_cache
def get_session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def get_db() -> Iterator[Session]:
    """Yields a session for one request; the route commits what it changed."""
    # Commits are explicit in the routes, before the response and before any
    # task is enqueued, so a worker never looks for a row that is not there yet.
    session = get_session_factory()()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
