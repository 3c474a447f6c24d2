"""A dataset of twice the worker's allowed memory (WORKER_MEMORY_BYTES, set small here) trains and
succeeds, memory-mapped and gathered batch by batch, on both deployments: uploaded as a CSV
through the real API, trained by a real worker. Bit-for-bit equality with the in-memory path:
tests/worker/test_mapped_data.py."""
import uuid

import pytest

from tests.conftest import REDIS_URL, _start
from tests.e2e.helpers import blobs, csv_bytes, mlp_spec, wait_for

MEMORY = 200_000  # bytes the worker may give a job's data
ROWS = 16_700  # x 24 bytes a row (4 float32 features, an int64 label): about 2 x MEMORY


@pytest.fixture(scope="module", params=["embedded", "production"])
def small_stack(request, tmp_path_factory):
    env = {"WORKER_MEMORY_BYTES": str(MEMORY), "MAX_UPLOAD_BYTES": str(4 << 20)}
    if request.param == "production":
        env |= {"DATABASE_URL": request.getfixturevalue("postgres_url"), "BROKER_URL": REDIS_URL,
                "QUEUE_NAME": f"trainyard-test-{uuid.uuid4().hex[:8]}"}
    stack = _start(f"small-{request.param}", tmp_path_factory.mktemp(f"small-{request.param}"), env)
    yield stack
    stack.stop()


def test_a_dataset_of_twice_the_workers_memory_trains_and_succeeds(small_stack):
    x, y = blobs(ROWS)
    with small_stack.client(small_stack.new_key(f"big-{uuid.uuid4().hex[:6]}")) as api:
        r = api.post("/v1/datasets", files={"file": ("big.csv", csv_bytes(x, y))}, data={"target": "label"})
        assert r.status_code == 201, r.text
        spec = mlp_spec(r.json()["id"], epochs=2, batch_size=256, validation_split=0.2)
        spec["data"] = {"standardize": True}
        plan = api.post("/v1/jobs", json=spec, params={"dry_run": "true"}).json()
        assert plan["data_bytes"] == ROWS * 24 >= 2 * MEMORY and plan["data_path"] == "memory_mapped", plan
        job = wait_for(api, api.post("/v1/jobs", json=spec).json()["id"], timeout=180)
        assert job["status"] == "succeeded", job
        epochs = api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
        assert len(epochs) == 2 and epochs[-1]["val_accuracy"] > 0.8
    assert small_stack.worker_log_count("training from memory-mapped data") >= 1
