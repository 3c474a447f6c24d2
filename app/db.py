"""Engine, session factory and the unit of work (session_scope), shared by the API and the worker."""
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings


# A request takes a pooled connection in its route's thread and gives it back in its
# session scope's exit, one more thread trip later (FastAPI runs a dependency's exit
# outside the thread pool's limit, so a request never waits for a thread while holding a
# connection). The pool still outgrows the API's thread pool (40), so a burst never leaves
# a thread waiting for a connection.
POOL_SIZE, POOL_OVERFLOW = 10, 50
# Session.info key of a unit of work's steps that must follow its commit.
AFTER_COMMIT = "trainyard.after_commit"
# The largest integers a query may compare or skip: a larger one overflowed in the driver, a
# 500 (?offset=9223372036854775808 on SQLite; ?after_step=2**63-1 against PostgreSQL's
# INTEGER). Query parameters that reach SQL are bounded by the column they meet: an OFFSET
# takes a BIGINT, steps and event ids are INTEGER columns (app/models).
SQL_BIGINT_MAX = 2**63 - 1
SQL_INT_MAX = 2**31 - 1


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL (postgresql+psycopg://...) as psycopg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


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
def get_session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def after_commit(session: Session, step: Callable[[], object]) -> None:
    """Runs ``step`` once the session's unit of work has committed; never after a rollback."""
    session.info.setdefault(AFTER_COMMIT, []).append(step)


def complete(session: Session) -> None:
    """Commits the unit of work, then runs the steps that wait for the commit, in order."""
    session.commit()
    for step in session.info.pop(AFTER_COMMIT, []):
        step()


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: commits on success (then its after-commit steps), rolls back on error."""
    session = get_session_factory()()
    try:
        yield session
        complete(session)
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_db() -> Iterator[Session]:
    """The request's unit of work (SessionDep): routes and services flush, this commits."""
    with session_scope() as session:
        yield session
