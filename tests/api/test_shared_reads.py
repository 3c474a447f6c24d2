"""GET /v1/jobs/{id}'s one fast path (app/jobs/reads.py): the polls that arrive together share
one query, each (tenant, job) once, tenants kept apart; a poll never takes the result of a query
already under way; a database error is each poll's 503."""
import asyncio
import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from app.jobs import reads, service
from tests.api.routes import ended_job, queued_job
from tests.e2e.helpers import blobs, upload_npz


def _count_queries(monkeypatch, during=None) -> list:
    """The keys of each shared query, in order; ``during`` runs inside the first one."""
    queries, real = [], service.read_many

    def counted(*, db_session, keys):
        queries.append(sorted(keys))
        if during and len(queries) == 1:
            during()
        return real(db_session=db_session, keys=keys)

    monkeypatch.setattr(service, "read_many", counted)
    return queries


def _together(client, paths: list[str]):
    """GETs the paths concurrently on the app's loop; their responses, in order."""
    return client.portal_call(lambda: asyncio.gather(*(client.async_client.get(p) for p in paths)))


def _wait(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.services
def test_polls_that_arrive_together_share_one_query_and_keep_tenants_apart(api, other_api, monkeypatch):
    dataset = upload_npz(api, *blobs(40))["id"]
    ended, waiting = ended_job(api, dataset), queued_job(api, dataset)
    alone = {job["id"]: api.get(f"/v1/jobs/{job['id']}").json() for job in (ended, waiting)}
    entered, release = threading.Event(), threading.Event()

    def hold_the_first_query():  # the polls below arrive while it runs, and wait for the next
        entered.set()
        release.wait(10)

    queries = _count_queries(monkeypatch, during=hold_the_first_query)
    first = api.portal_start(api.async_client.get(f"/v1/jobs/{ended['id']}"))
    assert entered.wait(10)
    polls = [api.portal_start(api.async_client.get(f"/v1/jobs/{ended['id']}")),
             api.portal_start(api.async_client.get(f"/v1/jobs/{ended['id']}")),
             api.portal_start(api.async_client.get(f"/v1/jobs/{waiting['id']}")),
             api.portal_start(api.async_client.get("/v1/jobs/job_nope")),
             other_api.portal_start(other_api.async_client.get(f"/v1/jobs/{ended['id']}"))]
    _wait(lambda: sum(len(f) for f in reads.shared_reads()._pending.values()) == len(polls))
    release.set()
    answers = [f.result(timeout=30) for f in polls]
    assert first.result(timeout=30).json() == alone[ended["id"]]
    assert [r.status_code for r in answers] == [200, 200, 200, 404, 404]  # another tenant's job: 404
    assert len(queries) == 2 and len(queries[1]) == 4  # five polls, four distinct (tenant, job) pairs
    assert answers[0].json() == answers[1].json() == alone[ended["id"]]
    assert answers[2].json() == alone[waiting["id"]] and answers[2].json()["waiting_reason"]
    assert answers[3].json()["detail"] == "no job 'job_nope'"


def test_a_poll_arriving_during_a_query_waits_for_the_next_one(api, monkeypatch):
    """A client that has just cancelled its job must read it cancelled, not an earlier query's answer."""
    job = queued_job(api, upload_npz(api, *blobs(40))["id"])
    late: list = []

    def cancel_and_poll_again():  # runs inside the first query, in its thread
        assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
        late.append(api.portal_start(api.async_client.get(f"/v1/jobs/{job['id']}")))

    queries = _count_queries(monkeypatch, during=cancel_and_poll_again)
    first = api.get(f"/v1/jobs/{job['id']}")
    assert first.status_code == 200
    assert late[0].result(timeout=30).json()["status"] == "cancelled"
    assert len(queries) == 2


def test_a_database_error_is_each_polls_503_and_the_next_poll_reads(api, monkeypatch):
    job = ended_job(api, upload_npz(api, *blobs(40))["id"])
    real = service.read_many

    def down(*, db_session, keys):
        raise OperationalError("SELECT", {}, Exception("the database is restarting"))

    monkeypatch.setattr(service, "read_many", down)
    answers = _together(api, [f"/v1/jobs/{job['id']}"] * 3)
    assert [r.status_code for r in answers] == [503] * 3
    assert all(r.headers["Retry-After"] == "2" for r in answers)
    monkeypatch.setattr(service, "read_many", real)
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    assert reads.shared_reads()._pending == {}
