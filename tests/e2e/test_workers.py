"""The worker registry (GET /v1/workers), jobs waiting for a kind of worker, and `trainyard worker`."""
import signal
import subprocess
import time

import pytest
import torch

from tests.conftest import TEST_LIMITS
from tests.devices import CUDA, needs_cuda
from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for
from tests.stack import Stack
from worker import threads


def test_the_running_worker_is_listed_with_its_device(api, stack):
    assert stack.client(None).get("/v1/workers").status_code == 401
    body = api.get("/v1/workers").json()
    assert body["online"] == {"gpu": 0, "cpu": 1}
    [worker] = body["items"]
    assert worker["kind"] == "cpu" and worker["status"] == "online" and worker["device_index"] is None
    assert worker["device_name"].endswith("cores)") and worker["memory_bytes"] > 2**30
    assert worker["queue"].endswith(".cpu") and worker["name"].startswith("cpu0-")


def test_a_busy_worker_shows_its_job_to_the_jobs_owner_only(api, other_api):
    x, y = blobs(160)
    spec = mlp_spec(upload_npz(api, x, y)["id"], epochs=40, batch_size=1)
    job = api.post("/v1/jobs", json=spec).json()
    wait_for(api, job["id"], statuses=("running",))
    deadline = time.monotonic() + 10
    while not (mine := api.get("/v1/workers").json()["items"][0])["busy"] and time.monotonic() < deadline:
        time.sleep(0.1)
    theirs = other_api.get("/v1/workers").json()["items"][0]
    assert (mine["busy"], mine["running_job_id"]) == (True, job["id"])
    assert (theirs["busy"], theirs["running_job_id"]) == (True, None)
    api.post(f"/v1/jobs/{job['id']}/cancel")
    wait_for(api, job["id"])
    deadline = time.monotonic() + 10
    while api.get("/v1/workers").json()["items"][0]["busy"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.get("/v1/workers").json()["items"][0]["running_job_id"] is None


def test_a_cuda_job_waits_with_the_reason_while_no_gpu_worker_is_online(api):
    x, y = blobs(32)
    ds = upload_npz(api, x, y)
    created = api.post("/v1/jobs", json=mlp_spec(ds["id"], device="cuda"))
    assert created.status_code == 202
    assert created.json()["waiting_reason"] == "waiting: no GPU worker online"
    # `auto` goes to the CPU worker meanwhile, and the CUDA job is still waiting after it.
    auto = wait_for(api, api.post("/v1/jobs", json=mlp_spec(ds["id"])).json()["id"])
    assert auto["status"] == "succeeded" and auto["device"] == "cpu" and auto["waiting_reason"] is None
    job = api.get(f"/v1/jobs/{created.json()['id']}").json()
    assert (job["status"], job["waiting_reason"]) == ("queued", "waiting: no GPU worker online")
    assert api.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"


@pytest.fixture
def bare_stack(tmp_path):
    """An embedded deployment whose workers the test starts itself."""
    stack = Stack("supervised", tmp_path, {**TEST_LIMITS, "HEARTBEAT_SECONDS": "0.5"})
    stack.cli("migrate")
    stack.api = stack._spawn("api", "api", "--port", str(stack.port))
    stack.wait_ready()
    yield stack
    stack.stop()


def _wait(predicate, timeout=60, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return sorted(int(p) for p in out.stdout.split())


def test_worker_supervisor_runs_restarts_and_stops_its_workers(bare_stack):
    supervisor = bare_stack._spawn("workers", "worker", "--cpu", "2")
    bare_stack.workers.append(supervisor)
    with bare_stack.client(bare_stack.new_key("ops")) as api:
        def online():
            items = api.get("/v1/workers").json()["items"]
            return sorted((w["name"].split("-")[0], w["status"]) for w in items)
        _wait(lambda: online() == [("cpu0", "online"), ("cpu1", "online")], what="two CPU workers")
        names = sorted(w["name"] for w in api.get("/v1/workers").json()["items"])
        assert names == [f"cpu0-{supervisor.pid}@{names[0].split('@')[1]}",
                         f"cpu1-{supervisor.pid}@{names[0].split('@')[1]}"]

        # A worker process that dies is replaced under the same name.
        first = _children(supervisor.pid)
        assert len(first) == 2
        registered = max(w["started_at"] for w in api.get("/v1/workers").json()["items"])
        subprocess.run(["kill", "-9", str(first[0])], check=True)
        _wait(lambda: len(set(_children(supervisor.pid)) - set(first)) == 1, what="a replacement")
        # The killed worker's row still looks online for WORKER_OFFLINE_SECONDS: wait for
        # the replacement's own registration (its row's started_at moves on).
        _wait(lambda: max(w["started_at"] for w in api.get("/v1/workers").json()["items"]) > registered,
              what="the replacement registered")
        assert online() == [("cpu0", "online"), ("cpu1", "online")]
        x, y = blobs(60)
        job = wait_for(api, api.post("/v1/jobs", json=mlp_spec(upload_npz(api, x, y)["id"])).json()["id"])
        assert job["status"] == "succeeded"
        # The training processes split the cores: torch runs a half each (2 cores: one
        # thread each, where torch's default would run two each on the same two cores).
        assert f"{threads.share(2)} torch thread(s) of {threads.cores()} core(s)" in bare_stack.logs()

        # SIGTERM stops every worker; the registry says so.
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
        assert api.get("/v1/workers").json() == {"items": [], "online": {"gpu": 0, "cpu": 0}}
        stopped = api.get("/v1/workers", params={"include_offline": True}).json()["items"]
        assert sorted(w["status"] for w in stopped) == ["stopped", "stopped"]


def test_asking_for_a_gpu_that_is_not_there_is_refused(bare_stack):
    missing = torch.cuda.device_count() if CUDA else 0  # one past the last
    out = bare_stack.cli("worker", "--devices", str(missing), check=False)
    assert out.returncode == 2
    seen = ", ".join(f"{i} ({torch.cuda.get_device_name(i)})" for i in range(missing)) or "none"
    assert f"no GPU {missing} on this machine; GPUs torch sees: {seen}" in out.stderr


@needs_cuda
def test_a_gpu_worker_trains_cuda_mixed_precision_and_auto_jobs_on_its_gpu(bare_stack):
    bare_stack.start_worker("--devices", "0")
    name = torch.cuda.get_device_name(0)
    with bare_stack.client(bare_stack.new_key("gpu")) as api:
        [worker] = api.get("/v1/workers").json()["items"]
        assert (worker["kind"], worker["device_index"], worker["device_name"]) == ("gpu", 0, name)
        assert worker["memory_bytes"] > 2**30 and worker["queue"].endswith(".gpu")
        x, y = blobs(200)
        ds = upload_npz(api, x, y)["id"]
        for training in ({"device": "cuda"}, {"device": "cuda", "precision": "bf16"},
                         {"precision": "fp16"}, {"device": "auto"}):
            created = api.post("/v1/jobs", json=mlp_spec(ds, **training)).json()
            job = wait_for(api, created["id"])
            assert (job["status"], job["device"]) == ("succeeded", name), (training, job, bare_stack.logs())
            assert job["latest_metrics"]["train_loss"] < 1.0
