"""Every /v1 route needs a key, refused the same way; keys are stored as digests; a tenant
never sees, changes or trains on another tenant's data."""
import hashlib

import pytest
import sqlalchemy as sa

from app.db import make_engine
from tests.api.routes import V1_ROUTES, held_study, queued_job
from tests.e2e.helpers import blobs, errors_for, mlp_spec, upload_npz

BAD_HEADERS = [
    # (Authorization header, words of the refusal)
    (None, "missing Authorization header"),
    ("Bearer", "must be 'Bearer <api key>'"),
    ("Bearer   ", "must be 'Bearer <api key>'"),
    ("Basic abc", "must be 'Bearer <api key>'"),
    ("Bearer ty_not-a-real-key", "unknown or revoked API key"),
]


def test_health_needs_no_key(anon):
    assert anon.get("/healthz").json() == {"status": "ok"}
    ready = anon.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "broker": True}
    assert anon.get("/openapi.json").status_code == 200


def test_the_route_table_is_every_v1_route(anon):
    """A route added under /v1 must join V1_ROUTES, and so every test of it here."""
    paths = anon.get("/openapi.json").json()["paths"]
    served = {(method.upper(), path) for path, ops in paths.items() if path.startswith("/v1")
              for method in ops}
    assert served == {(method, path) for method, path, _ in V1_ROUTES}


@pytest.mark.services
@pytest.mark.parametrize("header,words", BAD_HEADERS, ids=[str(h[0]) for h in BAD_HEADERS])
def test_calls_without_a_valid_key_are_401(anon, header, words):
    headers = {"Authorization": header} if header else {}
    for method, path, body in V1_ROUTES:
        url = path.format(job_id="job_x", dataset_id="ds_x", study_id="study_x", key_id="key_x", webhook_id="wh_x",
                          upload_id="up_x", n=1)
        r = anon.request(method, url, headers=headers, json=body)
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["errors"] == [{"field": "Authorization", "message": r.json()["detail"]}]
        assert words in r.json()["detail"], (method, path, r.text)


@pytest.mark.services
def test_keys_are_stored_only_as_digests(deployment):
    key = deployment.new_key("digests")
    assert key.startswith("ty_") and len(key) >= 40
    engine = make_engine(deployment.database_url)
    with engine.connect() as conn:
        hashes = conn.execute(sa.text("SELECT key_hash, prefix FROM api_keys")).all()
    engine.dispose()
    assert (hashlib.sha256(key.encode()).hexdigest(), key[:10]) in [tuple(h) for h in hashes]
    assert all(key != h[0] for h in hashes)


@pytest.mark.services
def test_another_tenant_gets_404_everywhere_and_changes_nothing(api, other_api):
    """The trained-job half (weights 200 to the owner only) is tests/e2e/test_auth.py's."""
    x, y = blobs(40)
    ds = upload_npz(api, x, y)
    job = queued_job(api, ds["id"])
    study = held_study(api, ds["id"])
    (key_id,) = [k["id"] for k in api.get("/v1/keys").json()["items"]]
    webhook = api.post("/v1/webhooks", json={"url": "https://93.184.215.14/hook", "events": ["job.failed"]}).json()
    upload = api.post("/v1/uploads", json={"filename": "a.csv", "size": 10}).json()
    ids = {"job_id": job["id"], "dataset_id": ds["id"], "study_id": study["id"], "key_id": key_id,
           "webhook_id": webhook["id"], "upload_id": upload["id"]}
    for method, path, body in V1_ROUTES:
        if "{" not in path:
            continue
        r = other_api.request(method, path.format(**ids, n=1), json=body)
        assert r.status_code == 404, (method, path, r.text)
        (owner,) = [value for name, value in ids.items() if "{" + name + "}" in path]
        assert owner in r.json()["detail"]
    for path in [f"/v1/datasets/{ds['id']}", f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/metrics",
                 f"/v1/jobs/{job['id']}/spec"]:
        assert api.get(path).status_code == 200, path
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"  # their cancel changed nothing
    assert api.get(f"/v1/datasets/{ds['id']}").json() == ds  # nor did their delete
    assert other_api.get("/v1/datasets").json()["total"] == 0
    assert other_api.get("/v1/jobs").json()["total"] == 0
    assert api.get(f"/v1/studies/{study['id']}").json()["status"] == "running"
    assert api.get("/v1/keys").json()["items"][0]["status"] == "active"  # nor did their revoke
    assert [h["id"] for h in api.get("/v1/webhooks").json()["items"]] == [webhook["id"]]  # nor their delete
    assert api.get(f"/v1/uploads/{upload['id']}").json()["missing"] == [1]  # nor their abort
    # Nor can it train on the dataset.
    r = other_api.post("/v1/jobs", json=mlp_spec(ds["id"]))
    assert r.status_code == 422 and "no dataset" in errors_for(r)["dataset"]
    assert other_api.get("/v1/jobs").json()["total"] == 0
