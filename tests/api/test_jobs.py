"""The job routes without a worker: dry runs, idempotent submits, pages and filters, cancel,
the reads of a job that has not trained (its weights, predictions, metrics, spec, events),
each refusal's status and body, and that a refused request changes nothing stored."""
import pytest

from app.client import parse_sse
from tests.api.routes import ended_job, queued_job
from tests.e2e.helpers import blobs, errors_for, mlp_spec, upload_npz


@pytest.fixture
def dataset(api) -> dict:
    x, y = blobs(100)
    return upload_npz(api, x, y)


def total(api) -> int:
    return api.get("/v1/jobs").json()["total"]


def events_of(response) -> list[tuple[str, int | None]]:
    """(event, id) of a replayed stream's body, in order."""
    return [(e.event, e.id) for e in parse_sse(iter(response.text.splitlines()))]


def test_dry_run_reports_the_plan_and_queues_nothing(api, dataset):
    before = total(api)
    r = api.post("/v1/jobs", params={"dry_run": "true"}, json=mlp_spec(dataset["id"], batch_size=10))
    assert r.status_code == 200, r.text
    plan = r.json()
    assert [l["output_shape"] for l in plan["layers"]] == [[16], [16], [3]]
    assert [l["parameters"] for l in plan["layers"]] == [80, 0, 51]
    assert plan["train_rows"] == 75 and plan["validation_rows"] == 25
    assert plan["steps_per_epoch"] == 8 and plan["total_steps"] == 40
    assert [l["path"] for l in plan["layers"]] == ["model.layers[0]", "model.layers[1]", "model.layers[2]"]
    # Forward 2*b*in*out per linear layer, backward about twice that: of the order of 3x forward.
    forward = 2 * 10 * (4 * 16 + 16 * 3)
    assert 2 * forward <= plan["flops_per_step"] <= 4 * forward
    assert plan["memory_bytes"] >= 4 * plan["parameter_count"]
    assert total(api) == before


@pytest.mark.services
def test_idempotency_key_returns_the_same_job(api, dataset):
    spec = mlp_spec(dataset["id"], epochs=1)
    headers = {"Idempotency-Key": f"retry-{dataset['id']}"}
    first = api.post("/v1/jobs", json=spec, headers=headers)
    again = api.post("/v1/jobs", json=spec, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert total(api) == 1

    changed = {**spec, "training": {**spec["training"], "epochs": 2}}
    conflict = api.post("/v1/jobs", json=changed, headers=headers)
    assert conflict.status_code == 409
    assert "different job spec" in errors_for(conflict)["Idempotency-Key"]
    assert total(api) == 1
    assert api.get(f"/v1/jobs/{first.json()['id']}/spec").json()["spec"]["training"]["epochs"] == 1
    # A replay after the job ended is still the same job, not a new one.
    api.post(f"/v1/jobs/{first.json()['id']}/cancel")
    replay = api.post("/v1/jobs", json=spec, headers=headers)
    assert replay.status_code == 202 and replay.json()["id"] == first.json()["id"]
    assert replay.json()["status"] == "cancelled" and total(api) == 1


@pytest.mark.services
def test_the_same_idempotency_key_of_two_tenants_is_two_jobs(api, other_api, dataset):
    theirs = upload_npz(other_api, *blobs(100))
    headers = {"Idempotency-Key": "shared-key"}
    mine = api.post("/v1/jobs", json=mlp_spec(dataset["id"]), headers=headers).json()
    other = other_api.post("/v1/jobs", json=mlp_spec(theirs["id"]), headers=headers)
    assert other.status_code == 202 and other.json()["id"] != mine["id"]


def test_an_idempotency_key_over_200_characters_is_422(api, dataset):
    r = api.post("/v1/jobs", json=mlp_spec(dataset["id"]), headers={"Idempotency-Key": "k" * 201})
    assert r.status_code == 422 and "at most 200 characters" in r.json()["detail"]
    assert total(api) == 0


def test_an_idempotency_key_over_200_characters_is_named(api, dataset):
    r = api.post("/v1/jobs", json=mlp_spec(dataset["id"]), headers={"Idempotency-Key": "k" * 201})
    assert "Idempotency-Key" in errors_for(r)  # the header as the client sent it, not "body"


@pytest.mark.services
def test_list_jobs_paginates_and_filters_by_status(api, dataset):
    ids = [queued_job(api, dataset["id"], epochs=1, seed=i)["id"] for i in range(3)]
    cancelled = ended_job(api, dataset["id"], epochs=1)["id"]
    page = api.get("/v1/jobs", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["total"] == 4 and (page["limit"], page["offset"]) == (2, 0)
    assert page["items"][0]["created_at"] >= page["items"][1]["created_at"]
    rest = api.get("/v1/jobs", params={"limit": 2, "offset": 2}).json()
    assert {j["id"] for j in page["items"] + rest["items"]} == {*ids, cancelled}
    queued = api.get("/v1/jobs", params={"status": "queued", "limit": 500}).json()
    assert {j["id"] for j in queued["items"]} == set(ids) and queued["total"] == 3
    assert [j["id"] for j in api.get("/v1/jobs", params={"status": "cancelled"}).json()["items"]] == [cancelled]
    assert api.get("/v1/jobs", params={"status": "succeeded"}).json() == \
        {"items": [], "total": 0, "limit": 50, "offset": 0}
    bad = api.get("/v1/jobs", params={"status": "done"})
    assert bad.status_code == 422 and "'done'" in errors_for(bad)["status"]


@pytest.mark.parametrize("params,field", [({"limit": 0}, "limit"), ({"limit": 501}, "limit"),
                                          ({"offset": -1}, "offset"), ({"limit": "all"}, "limit")])
def test_page_limits_are_422_naming_the_parameter(api, params, field):
    r = api.get("/v1/jobs", params=params)
    assert r.status_code == 422 and field in errors_for(r), r.text


@pytest.mark.services
def test_cancel_a_queued_job_ends_it_and_a_second_cancel_is_409(api, dataset):
    job = queued_job(api, dataset["id"])
    r = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["error"], done["started_at"]) == ("cancelled", "cancelled by request", None)
    assert done["finished_at"] is not None and done["attempts"] == 0
    before = api.get(f"/v1/jobs/{job['id']}").json()
    assert (before["status"], before["finished_at"]) == ("cancelled", done["finished_at"])
    again = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert api.get(f"/v1/jobs/{job['id']}").json() == before


def test_a_job_that_has_not_succeeded_has_no_weights_nor_predictions(api, dataset):
    for job in (queued_job(api, dataset["id"]), ended_job(api, dataset["id"])):
        status = job["status"]
        for fmt in ("safetensors", "onnx", "onnx-int8"):
            r = api.get(f"/v1/jobs/{job['id']}/weights", params={"format": fmt})
            assert r.status_code == 409, r.text
            assert r.json()["detail"] == f"job is {status}; weights are available once it has succeeded"
        r = api.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": [[1.0, 2.0, 3.0, 4.0]]})
        assert r.status_code == 409 and f"job is {status}" in r.json()["detail"]
    assert api.get(f"/v1/jobs/{job['id']}/weights", params={"format": "pickle"}).status_code == 422


def test_a_predict_body_is_checked_before_the_job(api, dataset):
    """Inputs of the wrong shape need a trained model: tests/e2e/test_predict_export.py."""
    job = queued_job(api, dataset["id"])
    r = api.post(f"/v1/jobs/{job['id']}/predict", json={"rows": [[1, 2, 3, 4]]})
    assert r.status_code == 422
    assert errors_for(r) == {"inputs": "Field required", "rows": "Extra inputs are not permitted"}
    r = api.post(f"/v1/jobs/{job['id']}/predict", content=b"[1,2", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in errors_for(r)["body"]


def test_metrics_and_spec_of_a_job_not_yet_trained(api, dataset):
    spec = mlp_spec(dataset["id"])
    job = queued_job(api, dataset["id"])
    assert api.get(f"/v1/jobs/{job['id']}/metrics").json() == \
        {"job_id": job["id"], "epochs": [], "steps": [], "last_step": -1, "last_event_id": 1}
    served = api.get(f"/v1/jobs/{job['id']}/spec").json()
    assert served["spec"]["dataset"] == dataset["id"] and served["input_shape"] == [4]
    assert [l["type"] for l in served["spec"]["model"]["layers"]] == ["linear", "relu", "linear"]
    assert served["spec"]["training"]["epochs"] == spec["training"]["epochs"]
    for params, field in [({"after_step": -2}, "after_step"), ({"limit": 1}, "limit"),
                          ({"limit": 100_001}, "limit")]:
        r = api.get(f"/v1/jobs/{job['id']}/metrics", params=params)
        assert r.status_code == 422 and field in errors_for(r), (params, r.text)


@pytest.mark.parametrize("path", ["", "/metrics", "/spec", "/events", "/weights"])
def test_an_unknown_job_is_404(api, path):
    r = api.get(f"/v1/jobs/job_nope{path}")
    assert r.status_code == 404 and r.json() == {"detail": "no job 'job_nope'", "errors": []}


def test_unknown_job_cancel_and_predict_are_404(api):
    assert api.post("/v1/jobs/job_nope/cancel").status_code == 404
    assert api.post("/v1/jobs/job_nope/predict", json={"inputs": [[1.0]]}).status_code == 404


@pytest.mark.services
def test_a_new_key_and_a_remembered_key_read_the_same_body(deployment):
    with deployment.client(deployment.new_key("remembering")) as owner:
        job = ended_job(owner, upload_npz(owner, *blobs(40))["id"])
        expected = owner.get(f"/v1/jobs/{job['id']}").json()
    with deployment.client(deployment.new_key("remembering")) as reader:  # same tenant, a new key
        first = reader.get(f"/v1/jobs/{job['id']}")  # looks the key up in the database
        again = reader.get(f"/v1/jobs/{job['id']}")  # finds it in the API's memory
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == expected
    assert expected["status"] == "cancelled" and expected["attempt_history"] == []


@pytest.mark.services
def test_another_tenants_job_is_404_with_a_remembered_key(api, other_api, dataset):
    job = ended_job(api, dataset["id"])
    assert other_api.get("/v1/jobs/job_nope").status_code == 404  # their key is now remembered
    r = other_api.get(f"/v1/jobs/{job['id']}")
    assert r.status_code == 404 and job["id"] in r.json()["detail"]


@pytest.mark.services
def test_an_ended_jobs_events_replay_and_end(api, dataset):
    job = ended_job(api, dataset["id"])
    r = api.get(f"/v1/jobs/{job['id']}/events")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert events_of(r) == [("status", 1), ("status", 2), ("end", None)]
    assert '"status":"cancelled"' in r.text.split("event: end")[1]
    for resumed in (api.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "1"}),
                    api.get(f"/v1/jobs/{job['id']}/events", params={"after": 1})):
        assert events_of(resumed) == [("status", 2), ("end", None)]


@pytest.mark.parametrize("header", ["seven", "-3", "1.5"])
def test_a_bad_last_event_id_is_422(api, other_api, dataset, header):
    job = queued_job(api, dataset["id"], epochs=1)
    bad = api.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": header})
    assert bad.status_code == 422 and "non-negative integer" in errors_for(bad)["Last-Event-ID"]
    r = api.get(f"/v1/jobs/{job['id']}/events", params={"after": -1})
    assert r.status_code == 422 and "after" in errors_for(r)
    assert other_api.get(f"/v1/jobs/{job['id']}/events").status_code == 404
