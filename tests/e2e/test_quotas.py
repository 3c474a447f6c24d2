"""Quotas with real processes: a job over the running-jobs quota waits queued and says why, then
trains; an ended job's artifacts count in the tenant's stored bytes (`trainyard tenants show`)."""
import time
import uuid

from tests.e2e.helpers import mlp_spec, wait_for


def test_running_quota_waits_then_trains_and_artifacts_count(stack):
    tenant = f"quota-{uuid.uuid4().hex[:8]}"
    key = stack.new_key(tenant)
    stack.cli("tenants", "set-quota", tenant, "--running-jobs", "1")
    with stack.client(key) as api:
        first = api.post("/v1/jobs", json=mlp_spec("iris", epochs=300, batch_size=1)).json()["id"]
        second = api.post("/v1/jobs", json=mlp_spec("iris", epochs=2)).json()["id"]
        deadline = time.monotonic() + 60
        while api.get(f"/v1/jobs/{first}").json()["status"] != "running":
            assert time.monotonic() < deadline, "the first job never started"
            time.sleep(0.2)
        waiting = api.get(f"/v1/jobs/{second}").json()
        assert waiting["status"] == "queued"
        assert waiting["waiting_reason"] == "waiting: tenant at its running-jobs quota (1)"
        assert api.post(f"/v1/jobs/{first}/cancel").status_code == 202
        assert wait_for(api, second)["status"] == "succeeded"
        dataset_bytes = sum(d["bytes"] for d in api.get("/v1/datasets").json()["items"])
    shown = stack.cli("tenants", "show", tenant).stdout
    stored = next(line.split() for line in shown.splitlines() if line.strip().startswith("stored_bytes"))
    assert int(stored[-2].replace(",", "")) > dataset_bytes  # the builtin's rows, and the jobs' weights
