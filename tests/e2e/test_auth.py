"""Every /v1 call needs a key; a tenant never sees another tenant's data."""
import hashlib

import pytest

from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for


def test_health_needs_no_key(stack):
    with stack.client(None) as anon:
        assert anon.get("/healthz").json() == {"status": "ok"}
        ready = anon.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "broker": True}
        assert anon.get("/openapi.json").status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ty_not-a-real-key", "Basic abc"])
def test_calls_without_a_valid_key_are_401(stack, header):
    with stack.client(None) as anon:
        headers = {"Authorization": header} if header else {}
        for method, path in [("GET", "/v1/jobs"), ("GET", "/v1/datasets"), ("POST", "/v1/jobs")]:
            r = anon.request(method, path, headers=headers, json={} if method == "POST" else None)
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json()["errors"][0]["field"] == "Authorization"


def test_keys_are_stored_only_as_digests(stack, tenant_keys):
    import sqlalchemy as sa

    from app.db import make_engine

    key = tenant_keys["alice"]
    assert key.startswith("ty_") and len(key) >= 40
    url = stack.env.get("DATABASE_URL") or f"sqlite:///{stack.tmp / 'data' / 'trainyard.db'}"
    engine = make_engine(url)
    with engine.connect() as conn:
        hashes = conn.execute(sa.text("SELECT key_hash, prefix FROM api_keys")).all()
    engine.dispose()
    assert (hashlib.sha256(key.encode()).hexdigest(), key[:10]) in [tuple(h) for h in hashes]
    assert all(key != h[0] for h in hashes)


def test_another_tenant_gets_404_everywhere(api, other_api):
    x, y = blobs(40)
    ds = upload_npz(api, x, y)
    job = wait_for(api, api.post("/v1/jobs", json=mlp_spec(ds["id"], epochs=1)).json()["id"])
    assert job["status"] == "succeeded"
    for path in [f"/v1/datasets/{ds['id']}", f"/v1/jobs/{job['id']}",
                 f"/v1/jobs/{job['id']}/metrics", f"/v1/jobs/{job['id']}/spec",
                 f"/v1/jobs/{job['id']}/weights"]:
        assert other_api.get(path).status_code == 404, path
        assert api.get(path).status_code == 200, path
    assert other_api.delete(f"/v1/datasets/{ds['id']}").status_code == 404
    assert ds["id"] not in {d["id"] for d in other_api.get("/v1/datasets", params={"limit": 500}).json()["items"]}
    assert job["id"] not in {j["id"] for j in other_api.get("/v1/jobs", params={"limit": 500}).json()["items"]}
    # Nor can it train on the dataset.
    r = other_api.post("/v1/jobs", json=mlp_spec(ds["id"]))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "dataset"
