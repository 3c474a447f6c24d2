"""Fixtures: private Redis / PostgreSQL servers that a chaos test may kill and restart at will."""
import pytest

from tests.chaos.servers import PostgresServer, RedisServer


@pytest.fixture
def private_redis():
    """A fresh redis-server on a spare port (function scoped: a killed server never leaks into the next test)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def private_postgres():
    """A fresh PostgreSQL cluster on a spare port with an empty `trainyard` database."""
    with PostgresServer() as server:
        yield server
