"""Per-tenant quotas in process: each refusal's status and body (the quota, its limit, the use),
that nothing is stored, the running-jobs quota as a wait, and concurrent submits at the edge."""
import asyncio

import pytest

from app.auth.service import tenant_for_key
from app.db import get_session_factory, session_scope
from app.models import Job
from app.quotas import service as quotas
from tests.e2e.helpers import blobs, mlp_spec, npz_bytes
from worker import runner


def tenant_of(api) -> str:
    key = api.async_client.headers["authorization"].split(" ", 1)[1]
    with get_session_factory()() as db:
        return tenant_for_key(db_session=db, key=key)


def set_quota(api, **values) -> str:
    tenant_id = tenant_of(api)
    with session_scope() as db:
        quotas.set_quotas(db_session=db, tenant=quotas.find_tenant(db_session=db, tenant=tenant_id), values=values)
    return tenant_id


def jobs_total(api) -> int:
    return api.get("/v1/jobs").json()["total"]


def test_a_job_over_the_jobs_quota_is_a_429_naming_it_and_stores_nothing(api):
    set_quota(api, jobs=2)
    for _ in range(2):
        assert api.post("/v1/jobs", json=mlp_spec("iris")).status_code == 202
    r = api.post("/v1/jobs", json=mlp_spec("iris"))
    assert r.status_code == 429, r.text
    assert r.json()["detail"] == "over the tenant's jobs quota: limit 2, in use 2, this request adds 1"
    assert jobs_total(api) == 2
    # An ended job frees its place.
    first = api.get("/v1/jobs").json()["items"][0]["id"]
    assert api.post(f"/v1/jobs/{first}/cancel").status_code == 200
    assert api.post("/v1/jobs", json=mlp_spec("iris")).status_code == 202


def test_the_default_applies_until_a_tenant_has_its_own_and_default_restores_it(api, other_api):
    set_quota(api, jobs=1)
    assert api.post("/v1/jobs", json=mlp_spec("iris")).status_code == 202
    assert api.post("/v1/jobs", json=mlp_spec("iris")).status_code == 429
    # The other tenant has the server's default (QUOTA_JOBS=1000).
    assert other_api.post("/v1/jobs", json=mlp_spec("iris")).status_code == 202
    assert other_api.post("/v1/jobs", json=mlp_spec("iris")).status_code == 202
    set_quota(api, jobs=None)
    assert api.post("/v1/jobs", json=mlp_spec("iris")).status_code == 202


def test_a_study_over_the_study_members_quota_is_a_429_and_stores_nothing(api):
    set_quota(api, study_members=3)
    study = {"base": mlp_spec("iris"), "seeds": [1, 2, 3, 4]}
    r = api.post("/v1/studies", json=study)
    assert r.status_code == 429, r.text
    assert r.json()["detail"] == "over the tenant's study_members quota: limit 3, in use 0, this request adds 4"
    assert api.get("/v1/studies").json()["total"] == 0 and jobs_total(api) == 0
    assert api.post("/v1/studies", json={**study, "seeds": [1, 2, 3]}).status_code == 201
    r = api.post("/v1/studies", json={**study, "seeds": [5]})
    assert r.status_code == 429 and "in use 3" in r.json()["detail"]


def test_an_upload_over_the_stored_bytes_quota_is_a_413_and_writes_no_file(api, deployment):
    x, y = blobs(50, seed=11)
    first = api.post("/v1/datasets", files={"file": ("a.npz", npz_bytes(x=x, y=y))})
    assert first.status_code == 201
    used = first.json()["bytes"]
    set_quota(api, stored_bytes=used + 100)
    store = deployment.data_dir.parent / "artifacts" / "datasets"
    files = set(store.iterdir())
    x2, y2 = blobs(50, seed=12)
    r = api.post("/v1/datasets", files={"file": ("b.npz", npz_bytes(x=x2, y=y2))})
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["detail"].startswith(f"over the tenant's stored_bytes quota: limit {used + 100:,} bytes, "
                                     f"in use {used:,} bytes, this request adds ")
    assert body["errors"][0]["field"] == "file"
    assert set(store.iterdir()) == files and api.get("/v1/datasets").json()["total"] == 1
    # At the quota, a job (whose weights would add to it) is refused too, with the same figures.
    set_quota(api, stored_bytes=used)
    r = api.post("/v1/jobs", json=mlp_spec(first.json()["id"]))
    assert r.status_code == 413 and "stored_bytes quota" in r.json()["detail"]
    # Deleting the dataset frees its bytes.
    assert api.delete(f"/v1/datasets/{first.json()['id']}").status_code == 204
    assert api.post("/v1/datasets", files={"file": ("b.npz", npz_bytes(x=x2, y=y2))}).status_code == 201


def test_artifact_bytes_count_once_recorded(api):
    tenant_id = set_quota(api)  # no change: just the tenant
    job_id = api.post("/v1/jobs", json=mlp_spec("iris")).json()["id"]
    with session_scope() as db:
        before = quotas.bytes_in_use(db_session=db, tenant_id=tenant_id)
    from app.storage import get_store, job_folder

    get_store().put(f"{job_folder(job_id)}/weights.safetensors", b"\0" * 1234)
    with session_scope() as db:
        assert quotas.record_artifacts(db_session=db, job_id=job_id) == 1234
    with session_scope() as db:
        assert quotas.bytes_in_use(db_session=db, tenant_id=tenant_id) == before + 1234


def test_over_the_running_quota_a_job_waits_queued_and_says_why(api):
    set_quota(api, running_jobs=1)
    a, b = (api.post("/v1/jobs", json=mlp_spec("iris")).json()["id"] for _ in range(2))
    with session_scope() as db:
        assert runner._claim(db_session=db, job_id=a, worker_id="w1", lease_seconds=60)[0] == 1
    with session_scope() as db:
        assert runner._claim(db_session=db, job_id=b, worker_id="w1", lease_seconds=60) == (None, None)
    job = api.get(f"/v1/jobs/{b}").json()
    assert job["status"] == "queued"
    assert job["waiting_reason"] == "waiting: tenant at its running-jobs quota (1)"
    with get_session_factory()() as db:
        assert db.get(Job, b).attempts == 0
    # With a slot free (a higher quota here), the next delivery claims it.
    set_quota(api, running_jobs=2)
    with session_scope() as db:
        assert runner._claim(db_session=db, job_id=b, worker_id="w1", lease_seconds=60)[0] == 1


@pytest.mark.services
def test_concurrent_submits_at_the_edge_pass_exactly_up_to_the_quota(api):
    set_quota(api, jobs=3)

    async def burst():
        return await asyncio.gather(*(api.async_client.post("/v1/jobs", json=mlp_spec("iris")) for _ in range(8)))

    codes = sorted(r.status_code for r in api.portal_call(burst))
    assert codes == [202] * 3 + [429] * 5
    assert jobs_total(api) == 3


def test_parse_amount_reads_units_and_default():
    assert quotas.parse_amount("10GiB", byte_units=True) == 10 * 2**30
    assert quotas.parse_amount("500MB", byte_units=True) == 500 * 10**6
    assert quotas.parse_amount("default") is None and quotas.parse_amount("0") == 0
    with pytest.raises(ValueError):
        quotas.parse_amount("ten")


def test_the_default_deployment_has_no_rate_limit(api):
    assert all(api.get("/v1/jobs").status_code == 200 for _ in range(10))
