"""A tenant never sees another tenant's trained job, on a real deployment (the 401s of every
route, the keys' digests and the 404s of an untrained job: tests/api/test_auth.py)."""
from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for


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
