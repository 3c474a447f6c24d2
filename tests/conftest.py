"""Fixtures that start real deployments: embedded (SQLite + folder broker) and PostgreSQL + Redis."""
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.stack import Stack

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# CI must prove the production set: there an unreachable PostgreSQL or Redis fails the run.
REQUIRE_SERVICES = os.environ.get("TRAINYARD_REQUIRE_SERVICES") == "1"

TEST_LIMITS = {"MAX_EPOCHS": "500", "MAX_UPLOAD_BYTES": "200000", "MAX_PARAMETERS": "2000000",
               "MAX_JSON_BYTES": "500000", "MAX_DATASET_BYTES": "20000000",
               "UPLOAD_PART_BYTES": "4096"}  # resumable uploads of a few KB come in several parts


def _services_missing() -> str | None:
    import psycopg
    import redis

    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except Exception as exc:
        return f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}"
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except Exception as exc:
        return f"Redis unreachable at {REDIS_URL}: {exc}"
    return None


def require_services() -> None:
    missing = _services_missing()
    if missing:
        if REQUIRE_SERVICES:
            pytest.fail(missing)
        pytest.skip(missing)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (its SQLAlchemy URL), dropped afterwards."""
    import psycopg

    require_services()
    name = f"trainyard_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh, empty PostgreSQL database for this test session, dropped afterwards."""
    with fresh_postgres_database() as url:
        yield url


def _start(name: str, tmp, env: dict) -> Stack:
    # WEBHOOK_ALLOW_PRIVATE: the tests' webhook receivers listen on 127.0.0.1 (tests/e2e/test_webhooks.py).
    stack = Stack(name, tmp, {**TEST_LIMITS, "WEBHOOK_ALLOW_PRIVATE": "1", **env})
    try:
        stack.start()
    except Exception:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="session", params=["embedded", "production"])
def stack(request, tmp_path_factory):
    """A running deployment; tests using it run once on each."""
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "embedded":
        env = {}
    else:
        env = {"DATABASE_URL": request.getfixturevalue("postgres_url"), "BROKER_URL": REDIS_URL,
               "QUEUE_NAME": f"trainyard-test-{uuid.uuid4().hex[:8]}"}
    s = _start(request.param, tmp, env)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def tenant_keys(stack):
    return {"alice": stack.new_key(f"alice-{stack.name}"), "bob": stack.new_key(f"bob-{stack.name}")}


@pytest.fixture
def api(stack, tenant_keys) -> httpx.Client:
    with stack.client(tenant_keys["alice"]) as c:
        yield c


@pytest.fixture
def key(tenant_keys) -> str:
    """Alice's key, for the Python client and the CLI."""
    return tenant_keys["alice"]


@pytest.fixture
def client(stack, key):
    from app.client import Client

    with Client(stack.url, key) as c:
        yield c


@pytest.fixture
def other_api(stack, tenant_keys) -> httpx.Client:
    with stack.client(tenant_keys["bob"]) as c:
        yield c
