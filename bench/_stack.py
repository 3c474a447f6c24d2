"""What the service benchmarks share: a running deployment (as the tests start one) and percentiles.

"embedded" is SQLite and the folder broker in a fresh data folder; "production" is a fresh
PostgreSQL database (dropped afterwards) and Redis (TEST_POSTGRES_URL, TEST_REDIS_URL as in
the tests).
"""
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.stack import Stack  # noqa: E402  (a deployment of real processes)

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
DEPLOYMENTS = ("embedded", "production")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def deployment_env(name: str) -> tuple[dict, callable]:
    """Environment for the deployment, and a cleanup."""
    if name == "embedded":
        return {}, lambda: None
    if name != "production":
        raise SystemExit(f"unknown deployment {name!r}; choose from {', '.join(DEPLOYMENTS)}")
    import psycopg

    db = f"trainyard_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{db}"

    def drop():
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    env = {"DATABASE_URL": url, "BROKER_URL": REDIS_URL, "QUEUE_NAME": f"bench-{db}"}
    return env, drop


@contextmanager
def deployment(name: str, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A started deployment (migrated, API and one worker up), stopped and removed on exit."""
    extra, cleanup = deployment_env(name)
    tmp = Path(tempfile.mkdtemp(prefix="ty-bench-"))
    stack = Stack(f"bench-{name}", tmp, {**extra, **(env or {})})
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
