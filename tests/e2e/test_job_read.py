"""GET /v1/jobs/{id}: one query (the job and its status events), the same on both databases."""
import re
import time
from types import SimpleNamespace

import pytest

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from app.db import make_engine
from app.jobs import repository, service
from app.models import Job
from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for


@pytest.fixture(scope="module")
def finished_jobs(stack, tenant_keys) -> list[dict]:
    """Two jobs trained to success, shared by this module's tests on each deployment: they
    only read them."""
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
    engine = make_engine(_db_url(stack))
    with sessionmaker(bind=engine)() as session:
        tenant = session.scalar(select(Job.tenant_id).where(Job.id == job["id"]))
        found = repository.read_with_status_events(db_session=session, keys=[(tenant, job["id"])])
        rows = found[(tenant, job["id"])]
        assert [r.event["status"] for r in rows] == ["queued", "running", "succeeded"]
        assert repository.read_with_status_events(db_session=session, keys=[("tn_other", job["id"])]) == {}
    engine.dispose()
    read = service.from_rows([SimpleNamespace(**{**rows[0]._asdict(), "event": None, "event_at": None})])
    assert read.attempt_history == [] and read.id == job["id"]


def test_the_route_answers_what_the_repository_read_gives(stack, api, finished_jobs):
    """One read path on both databases: the route's body is the repository's rows through from_rows."""
    job = finished_jobs[0]  # metric events and three status events
    engine = make_engine(_db_url(stack))
    with sessionmaker(bind=engine)() as session:
        tenant = session.scalar(select(Job.tenant_id).where(Job.id == job["id"]))
        rows = repository.read_with_status_events(db_session=session, keys=[(tenant, job["id"])])[(tenant, job["id"])]
    engine.dispose()
    assert len(rows) == 3
    assert api.get(f"/v1/jobs/{job['id']}").json() == service.from_rows(rows).model_dump(mode="json")


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
