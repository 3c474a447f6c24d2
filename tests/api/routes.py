"""The /v1 route table the in-process tests walk, and the jobs they can make without a worker."""
from tests.e2e.helpers import mlp_spec

# (method, path, a body the route would accept): tests/api/test_auth.py checks the table
# is the app's own, so a new route is refused, 404'd and counted like these.
V1_ROUTES = [
    ("POST", "/v1/datasets", {"x": [[1.0, 2.0]], "y": [0]}),
    ("GET", "/v1/datasets", None),
    ("GET", "/v1/datasets/builtin", None),
    ("GET", "/v1/datasets/{dataset_id}", None),
    ("DELETE", "/v1/datasets/{dataset_id}", None),
    ("POST", "/v1/uploads", {"filename": "a.csv", "size": 10}),
    ("GET", "/v1/uploads/{upload_id}", None),
    ("PUT", "/v1/uploads/{upload_id}/parts/{n}", None),
    ("POST", "/v1/uploads/{upload_id}/complete", None),
    ("DELETE", "/v1/uploads/{upload_id}", None),
    ("POST", "/v1/jobs", {}),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/jobs/{job_id}", None),
    ("DELETE", "/v1/jobs/{job_id}", None),
    ("POST", "/v1/jobs/{job_id}/cancel", None),
    ("GET", "/v1/jobs/{job_id}/metrics", None),
    ("GET", "/v1/jobs/{job_id}/spec", None),
    ("GET", "/v1/jobs/{job_id}/events", None),
    ("POST", "/v1/jobs/{job_id}/predict", {"inputs": [[1.0, 2.0, 3.0, 4.0]]}),
    ("GET", "/v1/jobs/{job_id}/weights", None),
    ("POST", "/v1/studies", {"base": {}}),
    ("GET", "/v1/studies", None),
    ("GET", "/v1/studies/{study_id}", None),
    ("GET", "/v1/studies/{study_id}/curves", None),
    ("GET", "/v1/studies/{study_id}/events", None),
    ("POST", "/v1/studies/{study_id}/cancel", None),
    ("DELETE", "/v1/studies/{study_id}", None),
    ("GET", "/v1/workers", None),
    ("GET", "/v1/keys", None),
    ("POST", "/v1/keys", {"name": "spare"}),
    ("DELETE", "/v1/keys/{key_id}", None),
    ("POST", "/v1/webhooks", {"url": "https://93.184.215.14/hook", "events": ["job.succeeded"]}),
    ("GET", "/v1/webhooks", None),
    ("DELETE", "/v1/webhooks/{webhook_id}", None),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries", None),
    ("GET", "/v1/schema/spec", None),
]

# The refusals each /v1 operation documents (app/openapi.py): every key-taking operation 401
# and 503, 422 where anything is validated, 400 where a body is read, and each route's own.
SHARED = {401, 429, 503}  # 429: RATE_LIMIT (app/rate_limits.py), and a quota where a route checks one
REFUSALS = {
    ("POST", "/v1/datasets"): SHARED | {400, 413, 415, 422},
    ("GET", "/v1/datasets"): SHARED | {422},
    ("GET", "/v1/datasets/builtin"): SHARED,
    ("GET", "/v1/datasets/{dataset_id}"): SHARED | {404, 422},
    ("DELETE", "/v1/datasets/{dataset_id}"): SHARED | {404, 409, 422},
    ("POST", "/v1/uploads"): SHARED | {400, 413, 422},
    ("GET", "/v1/uploads/{upload_id}"): SHARED | {404, 422},
    ("PUT", "/v1/uploads/{upload_id}/parts/{n}"): SHARED | {400, 404, 409, 413, 422},
    ("POST", "/v1/uploads/{upload_id}/complete"): SHARED | {400, 404, 409, 413, 422},
    ("DELETE", "/v1/uploads/{upload_id}"): SHARED | {404, 409, 422},
    ("POST", "/v1/jobs"): SHARED | {400, 409, 413, 422},
    ("GET", "/v1/jobs"): SHARED | {422},
    ("GET", "/v1/jobs/{job_id}"): SHARED | {404, 422},
    ("DELETE", "/v1/jobs/{job_id}"): SHARED | {404, 409, 422},
    ("POST", "/v1/jobs/{job_id}/cancel"): SHARED | {404, 409, 413, 422},
    ("GET", "/v1/jobs/{job_id}/metrics"): SHARED | {404, 422},
    ("GET", "/v1/jobs/{job_id}/spec"): SHARED | {404, 422},
    ("GET", "/v1/jobs/{job_id}/events"): SHARED | {404, 422},
    ("POST", "/v1/jobs/{job_id}/predict"): SHARED | {400, 404, 409, 413, 422},
    ("GET", "/v1/jobs/{job_id}/weights"): SHARED | {404, 409, 422},
    ("POST", "/v1/studies"): SHARED | {400, 409, 413, 422},
    ("GET", "/v1/studies"): SHARED | {422},
    ("GET", "/v1/studies/{study_id}"): SHARED | {404, 422},
    ("GET", "/v1/studies/{study_id}/curves"): SHARED | {404, 422},
    ("GET", "/v1/studies/{study_id}/events"): SHARED | {404, 422},
    ("POST", "/v1/studies/{study_id}/cancel"): SHARED | {404, 409, 413, 422},
    ("DELETE", "/v1/studies/{study_id}"): SHARED | {404, 409, 422},
    ("GET", "/v1/workers"): SHARED | {422},
    ("GET", "/v1/keys"): SHARED | {422},
    ("POST", "/v1/keys"): SHARED | {400, 413, 422},
    ("DELETE", "/v1/keys/{key_id}"): SHARED | {404, 422},
    ("POST", "/v1/webhooks"): SHARED | {400, 413, 422},
    ("GET", "/v1/webhooks"): SHARED | {422},
    ("DELETE", "/v1/webhooks/{webhook_id}"): SHARED | {404, 422},
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): SHARED | {404, 422},
    ("GET", "/v1/schema/spec"): SHARED,
}


def queued_job(api, dataset_id: str, **training) -> dict:
    """A job submitted and left queued: nothing consumes the in-process broker's queue."""
    r = api.post("/v1/jobs", json=mlp_spec(dataset_id, **training))
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    return r.json()


def held_study(api, dataset_id: str) -> dict:
    """A study of two members, one queued, one held (no worker online: one member at a time; a
    dropout layer, so that they cannot train together as a pack, app/studies/packing.py)."""
    base = mlp_spec(dataset_id)
    base["model"]["layers"].insert(2, {"type": "dropout", "p": 0.1})
    r = api.post("/v1/studies", json={"base": base, "seeds": [1, 2]})
    assert r.status_code == 201, r.text
    assert [m["status"] for m in r.json()["members"]] == ["queued", "held"]
    return r.json()


def ended_job(api, dataset_id: str, **training) -> dict:
    """A job that has ended without a worker: cancelled while queued."""
    job = queued_job(api, dataset_id, **training)
    r = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    return r.json()
