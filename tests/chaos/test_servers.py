"""Proves the chaos harness: private servers start, die, come back on the same port, leave nothing behind,
and the machine's shared PostgreSQL (5432) and Redis (6379) are untouched."""
import os

import psycopg
import pytest
import redis
import sqlalchemy

from tests.chaos.servers import SHARED_PORTS, PostgresServer, RedisServer, pid_alive
from tests.conftest import PG_ADMIN_URL, REDIS_URL


def _shared_up() -> dict[str, bool]:
    up = {}
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        up["postgres"] = True
    except psycopg.OperationalError:
        up["postgres"] = False
    try:
        up["redis"] = redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except redis.RedisError:
        up["redis"] = False
    return up


@pytest.fixture(scope="module", autouse=True)
def shared_servers_untouched():
    """Whatever shared server answered before these tests must still answer after them."""
    before = _shared_up()
    yield
    after = _shared_up()
    assert {k for k, v in before.items() if v} <= {k for k, v in after.items() if v}, (before, after)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return not pid_alive(pid)  # an orphan killed with its server may linger as a zombie of PID 1


def _pg_value(server: PostgresServer, sql: str):
    with psycopg.connect(server.conninfo(), connect_timeout=5, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchone() if cur.description else None


def test_redis_kill_and_restart_on_same_port(private_redis):
    r = private_redis
    assert r.port not in SHARED_PORTS and r.url == f"redis://127.0.0.1:{r.port}/0"
    client = redis.Redis.from_url(r.url, socket_timeout=2)
    assert client.ping()
    client.set("k", "v")
    port, pid = r.port, r.pid

    r.kill()
    assert _gone(pid) and not r.running
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(r.url, socket_timeout=2).ping()

    r.restart()
    assert r.port == port and r.pid != pid
    client = redis.Redis.from_url(r.url, socket_timeout=2)
    assert client.ping()
    assert client.get("k") is None  # no persistence, like the shared server

    pid = r.pid
    r.stop()
    r.stop()  # idempotent
    assert _gone(pid)


def test_postgres_kill_recovers_committed_data_on_same_port(private_postgres):
    pg = private_postgres
    assert pg.port not in SHARED_PORTS
    assert _pg_value(pg, "select 1") == (1,)
    engine = sqlalchemy.create_engine(pg.url)  # the URL the app gets works as is
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("select current_database()")).scalar() == "trainyard"
    engine.dispose()
    _pg_value(pg, "create table t as select 42 as x")  # committed before the crash
    port, pids = pg.port, pg.pids()
    assert len(pids) > 1  # postmaster plus its helpers (checkpointer, walwriter, ...)

    pg.kill()
    assert all(map(_gone, pids)) and not pg.running
    with pytest.raises(psycopg.OperationalError):
        _pg_value(pg, "select 1")

    pg.start_again()  # crash recovery replays the WAL
    assert pg.port == port
    assert _pg_value(pg, "select x from t") == (42,)

    pids = pg.pids()
    pg.stop(mode="fast")
    pg.stop()  # idempotent
    for pid in pids:  # a graceful stop reaps everything: not even zombies remain
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    pg.start_again()
    assert _pg_value(pg, "select x from t") == (42,)


def test_close_removes_everything():
    with RedisServer() as r, PostgresServer() as pg:
        pids = [*r.pids(), *pg.pids()]
        dirs = [r.dir, pg.dir]
        pg.kill()  # close() must also cope with a server that is already dead
    assert all(map(_gone, pids))
    assert not any(d.exists() for d in dirs)
    r.close()  # idempotent
    pg.close()
