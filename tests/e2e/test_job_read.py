"""GET /v1/jobs/{id}: the one-query read, its event-loop path on PostgreSQL, and its fallbacks."""
import asyncio
import json
import re
import time
from contextlib import asynccontextmanager
from types import SimpleNamespace

import pytest
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import select

from app.db import libpq_url, make_engine
from app.jobs import repository, service
from app.jobs.reads import JobReader, fetch_in_thread, fetch_on_loop
from app.models import Job
from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for


@pytest.fixture(scope="module")
def finished_jobs(stack, tenant_keys) -> list[dict]:
    """Two jobs trained to success, shared by this module's tests on each deployment: they
    only read them (two, for the reads of distinct jobs that share one query)."""
    with stack.client(tenant_keys["alice"]) as api:
        x, y = blobs(60)
        ds = upload_npz(api, x, y)
        specs = [mlp_spec(ds["id"], epochs=3, log_every_steps=1, seed=seed) for seed in (3, 4)]
        ids = [api.post("/v1/jobs", json=spec).json()["id"] for spec in specs]
        return [wait_for(api, job_id) for job_id in ids]


def test_a_new_key_and_a_remembered_key_read_the_same_body(stack, finished_jobs):
    job = finished_jobs[0]
    fresh = stack.new_key(f"alice-{stack.name}")  # same tenant, not yet in the API's memory
    with stack.client(fresh) as reader:
        first = reader.get(f"/v1/jobs/{job['id']}")  # looks the key up in the database
        again = reader.get(f"/v1/jobs/{job['id']}")  # finds it in the API's memory
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    body = again.json()
    assert body["status"] == "succeeded" and body["progress"]["epochs"] == 3
    assert [(a["attempt"], a["outcome"]) for a in body["attempt_history"]] == [(1, "succeeded")]


def test_a_job_without_status_events_reads_with_an_empty_history(stack, finished_jobs):
    """The outer join: a job row with no status event is still one row, history []."""
    job = finished_jobs[0]
    engine = make_engine(stack.env.get("DATABASE_URL") or f"sqlite:///{stack.tmp / 'data' / 'trainyard.db'}")
    with engine.connect() as conn:
        tenant = conn.scalar(select(Job.tenant_id).where(Job.id == job["id"]))
        rows = repository.read_with_status_events(conn=conn, tenant_id=tenant, job_id=job["id"])
        assert [r.event["status"] for r in rows] == ["queued", "running", "succeeded"]
        assert repository.read_with_status_events(conn=conn, tenant_id="tn_other", job_id=job["id"]) == []
    engine.dispose()
    read = service.from_rows([SimpleNamespace(**{**rows[0]._asdict(), "event": None, "event_at": None})])
    assert read.attempt_history == [] and read.id == job["id"]


def test_event_loop_and_thread_reads_agree_on_postgresql(stack, api, finished_jobs):
    """The psycopg statement run on the event loop is SQLAlchemy's, compiled once: same rows, same body."""
    if stack.name != "production":
        return  # SQLite has only the thread path
    job = finished_jobs[0]
    url = stack.env["DATABASE_URL"]
    engine = make_engine(url)
    with engine.connect() as conn:
        tenant = conn.scalar(select(Job.tenant_id).where(Job.id == job["id"]))
        sync_rows = repository.read_with_status_events(conn=conn, tenant_id=tenant, job_id=job["id"])
    engine.dispose()

    async def read_async():
        async with AsyncConnectionPool(libpq_url(url), min_size=1, max_size=1,
                                       kwargs={"autocommit": True}) as pool:
            return await repository.read_many_async(pool=pool, keys=[(tenant, job["id"]), (tenant, "job_nope")])

    found = asyncio.run(read_async())
    assert list(found) == [(tenant, job["id"])]
    async_rows = found[(tenant, job["id"])]
    assert len(async_rows) == len(sync_rows) == 3
    assert [tuple(r)[1:] for r in async_rows] == [tuple(r) for r in sync_rows]  # after tenant_id
    assert service.from_rows(async_rows).model_dump_json() == service.from_rows(sync_rows).model_dump_json()
    assert api.get(f"/v1/jobs/{job['id']}").json() == service.from_rows(sync_rows).model_dump(mode="json")


def test_the_api_warms_up_and_freezes_its_heap(stack, api):
    """app/warmup.py: once started, the API imports what its first submissions would and
    freezes it all out of the garbage collector, whose full collections were the job read's p99."""
    log = stack.tmp / "api.log"
    deadline = time.monotonic() + 60
    while b"objects frozen" not in log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.2)
    found = re.search(rb"warm-up done: (\d+) objects frozen", log.read_bytes())
    assert found, stack.logs()
    assert int(found.group(1)) > 300_000  # torch, scikit-learn, SQLAlchemy, FastAPI, ...
    assert b"warm-up failed" not in log.read_bytes()


def _db_url(stack) -> str:
    return stack.env.get("DATABASE_URL") or f"sqlite:///{stack.tmp / 'data' / 'trainyard.db'}"


def _tenant_of(url: str, job_id: str) -> str:
    engine = make_engine(url)
    with engine.connect() as conn:
        tenant = conn.scalar(select(Job.tenant_id).where(Job.id == job_id))
    engine.dispose()
    return tenant


@asynccontextmanager
async def _fetch(url: str, where: str):
    """A JobReader's fetch: on the event loop (PostgreSQL only) or in a thread."""
    if where == "loop":
        async with AsyncConnectionPool(libpq_url(url), min_size=1, max_size=1,
                                       kwargs={"autocommit": True}) as pool:
            yield fetch_on_loop(pool)
    else:
        engine = make_engine(url)
        yield fetch_in_thread(engine)
        engine.dispose()


def _count_queries(monkeypatch, on_start=None) -> list:
    """Each fetch's keys, in order (both fetches' repository functions)."""
    queries = []
    real_async, real_sync = repository.read_many_async, repository.read_many

    async def counted_async(*, pool, keys):
        queries.append(sorted(keys))
        if on_start:
            await on_start()
        return await real_async(pool=pool, keys=keys)

    def counted_sync(*, conn, keys):
        queries.append(sorted(keys))
        return real_sync(conn=conn, keys=keys)

    monkeypatch.setattr(repository, "read_many_async", counted_async)
    monkeypatch.setattr(repository, "read_many", counted_sync)
    return queries


@pytest.mark.parametrize("where", ["loop", "thread"])
def test_concurrent_reads_share_a_query_and_keep_tenants_apart(stack, api, finished_jobs, monkeypatch, where):
    """app/jobs/reads.py: reads that wait together go in one query, each (tenant, job) once;
    another tenant's job, or none, is None (the route's thread path answers 404)."""
    if where == "loop" and stack.name != "production":
        return  # SQLite reads in a thread
    first, second = finished_jobs
    url = _db_url(stack)
    tenant = _tenant_of(url, first["id"])
    queries = _count_queries(monkeypatch)

    async def read_all():
        async with _fetch(url, where) as fetch:
            reader = JobReader(fetch, queries=1)
            return await asyncio.gather(
                reader.read(tenant, first["id"]), reader.read(tenant, first["id"]),
                reader.read(tenant, second["id"]), reader.read("tn_someone_else", first["id"]),
                reader.read(tenant, "job_nope"))

    mine, again, my_second, stranger, missing = asyncio.run(read_all())
    assert len(queries) == 1 and len(queries[0]) == 4  # five reads, four distinct pairs
    assert mine == again and json.loads(mine) == api.get(f"/v1/jobs/{first['id']}").json()
    assert json.loads(my_second) == api.get(f"/v1/jobs/{second['id']}").json()
    assert stranger is None and missing is None


def _read_one(stack, finished_jobs) -> tuple[dict, str, str]:
    """A finished job, the database's URL and the job's tenant."""
    job = finished_jobs[1]
    url = _db_url(stack)
    return job, url, _tenant_of(url, job["id"])


def test_a_read_never_takes_a_query_already_under_way(stack, finished_jobs, monkeypatch):
    """That query may predate the request: a read arriving during it waits for the next."""
    if stack.name != "production":
        return
    job, url, tenant = _read_one(stack, finished_jobs)

    async def run():
        under_way = asyncio.Event()

        async def started():
            under_way.set()
            await asyncio.sleep(0.05)

        queries = _count_queries(monkeypatch, on_start=started)
        async with _fetch(url, "loop") as fetch:
            reader = JobReader(fetch, queries=1)
            a = asyncio.create_task(reader.read(tenant, job["id"]))
            await under_way.wait()
            b = asyncio.create_task(reader.read(tenant, job["id"]))
            return queries, await asyncio.gather(a, b)

    queries, (a, b) = asyncio.run(run())
    assert a == b and json.loads(a)["id"] == job["id"]
    assert len(queries) == 2


def test_a_database_error_leaves_the_read_to_the_thread_path(stack, finished_jobs):
    if stack.name != "production":
        return
    job, url, tenant = _read_one(stack, finished_jobs)

    async def run():
        pool = AsyncConnectionPool(libpq_url(url), min_size=1, max_size=1, kwargs={"autocommit": True},
                                   open=False)
        await pool.open()
        await pool.close()  # every read now fails (psycopg_pool.PoolClosed)
        return await JobReader(fetch_on_loop(pool), queries=1).read(tenant, job["id"])

    assert asyncio.run(run()) is None
