"""A worker killed mid-job: the job is re-run by the reaper, or given up after max_attempts."""
import os
import signal
import time

import pytest

from tests.conftest import TEST_LIMITS
from tests.e2e.helpers import blobs, mlp_spec, training_child, upload_npz, wait_for
from tests.stack import Stack

FAST_REAPER = {"LEASE_SECONDS": "2", "CHECKPOINT_MIN_GAP_SECONDS": "0", "HEARTBEAT_SECONDS": "0.3", "REAPER_INTERVAL_SECONDS": "0.5",
               "MAX_ATTEMPTS": "2", **TEST_LIMITS}


@pytest.fixture(scope="module")
def reaper_stack(tmp_path_factory):
    stack = Stack("reaper", tmp_path_factory.mktemp("reaper"), FAST_REAPER)
    stack.start()
    yield stack
    stack.stop()


def _kill_mid_job(api, stack, job_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "running" and job["progress"]["step"] > 0:
            os.kill(training_child(stack.workers[0]), signal.SIGKILL)
            return
        time.sleep(0.05)
    raise AssertionError(f"job never got going: {job}")


def _long_spec(ds_id: str) -> dict:
    return mlp_spec(ds_id, epochs=40, batch_size=2, log_every_steps=50)


def test_killed_worker_job_is_rerun_and_completes_once(reaper_stack):
    with reaper_stack.client(reaper_stack.new_key("t1")) as api:
        x, y = blobs(200)
        ds = upload_npz(api, x, y)
        job = api.post("/v1/jobs", json=_long_spec(ds["id"])).json()
        _kill_mid_job(api, reaper_stack, job["id"])
        done = wait_for(api, job["id"], timeout=180)
        assert done["status"] == "succeeded", (done, reaper_stack.logs())
        assert done["attempts"] == 2
        first, second = done["attempt_history"]
        assert (first["attempt"], first["outcome"]) == (1, "retrying") and "was lost" in first["reason"]
        assert (second["attempt"], second["outcome"]) == (2, "succeeded")
        assert first["worker"] and first["ended_at"] <= second["started_at"]
        history = api.get(f"/v1/jobs/{job['id']}/metrics").json()
        # The lost attempt's points were cleared: one full, unduplicated history.
        assert [p["epoch"] for p in history["epochs"]] == list(range(1, 41))
        steps = [p["step"] for p in history["steps"]]
        assert steps == list(range(50, 75 * 40 + 1, 50))


def test_a_study_loses_no_member_when_a_worker_is_killed_mid_study(reaper_stack):
    """SIGKILL the training process while a study's second member trains: that member is run again, the
    held ones still start in turn, and the study completes with every member succeeded once."""
    with reaper_stack.client(reaper_stack.new_key("t5")) as api:
        x, y = blobs(200)
        ds = upload_npz(api, x, y)
        base = mlp_spec(ds["id"], epochs=20, batch_size=2, log_every_steps=50)
        # Dropout members cannot be packed (app/studies/packing.py): they run one at a time, in turn.
        base["model"]["layers"].insert(2, {"type": "dropout", "p": 0.1})
        body = {"base": base,
                "variants": [{"label": f"lr {lr}", "set": {"optimizer.lr": lr}} for lr in (0.1, 0.05, 0.02)],
                "seeds": [1], "parallel": 1}
        study = api.post("/v1/studies", json=body).json()
        second = study["members"][1]["job_id"]
        _kill_mid_job(api, reaper_stack, second)
        deadline = time.monotonic() + 180
        while (done := api.get(f"/v1/studies/{study['id']}").json())["status"] == "running":
            assert time.monotonic() < deadline, (done["counts"], reaper_stack.logs())
            time.sleep(0.2)
        assert done["status"] == "completed" and done["counts"] == {"succeeded": 3}, done
        attempts = [api.get(f"/v1/jobs/{m['job_id']}").json()["attempts"] for m in done["members"]]
        assert attempts == [1, 2, 1]
        for m in done["members"]:
            assert [p["epoch"] for p in api.get(f"/v1/jobs/{m['job_id']}/metrics").json()["epochs"]] == \
                list(range(1, 21))


def test_job_that_keeps_losing_its_worker_is_given_up(reaper_stack):
    with reaper_stack.client(reaper_stack.new_key("t2")) as api:
        x, y = blobs(200)
        ds = upload_npz(api, x, y)
        job = api.post("/v1/jobs", json=_long_spec(ds["id"])).json()
        _kill_mid_job(api, reaper_stack, job["id"])
        wait_for(api, job["id"], statuses=("running",))
        deadline = time.monotonic() + 60
        while api.get(f"/v1/jobs/{job['id']}").json()["attempts"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _kill_mid_job(api, reaper_stack, job["id"])
        done = wait_for(api, job["id"], timeout=60)
        assert done["status"] == "failed" and done["attempts"] == 2
        assert "worker lost 2 times" in done["error"]


def _weights(api, job_id: str) -> dict:
    from safetensors.torch import load

    return load(api.get(f"/v1/jobs/{job_id}/weights").content)


def _history(api, job_id: str) -> list:
    h = api.get(f"/v1/jobs/{job_id}/metrics").json()
    return [(p["step"], p["train_loss"]) for p in h["steps"]] + \
        [(p["epoch"], p["train_loss"], p["val_loss"]) for p in h["epochs"]]


def test_a_killed_job_resumes_from_its_checkpoint_and_ends_as_if_never_killed(reaper_stack):
    """SIGKILL the training process at several points; each job equals an uninterrupted run."""
    import torch

    with reaper_stack.client(reaper_stack.new_key("t3")) as api:
        x, y = blobs(200)
        ds = upload_npz(api, x, y)
        spec = mlp_spec(ds["id"], epochs=30, batch_size=2, log_every_steps=10, checkpoint_every=3)
        spec["model"]["layers"].insert(2, {"type": "dropout", "p": 0.2})  # RNG state must resume too
        reference = wait_for(api, api.post("/v1/jobs", json=spec).json()["id"], timeout=180)
        assert reference["status"] == "succeeded"
        want_weights, want_history = _weights(api, reference["id"]), _history(api, reference["id"])
        for kill_at_step in (40, 800, 1500):  # before the first checkpoint, and between later ones
            job = api.post("/v1/jobs", json=spec).json()
            deadline = time.monotonic() + 60
            while api.get(f"/v1/jobs/{job['id']}").json()["progress"]["step"] < kill_at_step:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            os.kill(training_child(reaper_stack.workers[0]), signal.SIGKILL)
            done = wait_for(api, job["id"], timeout=180)
            assert done["status"] == "succeeded" and done["attempts"] == 2, done
            got = _weights(api, job["id"])
            assert all(torch.equal(got[k], want_weights[k]) for k in want_weights), kill_at_step
            assert _history(api, job["id"]) == want_history, kill_at_step


def test_sigterm_hands_the_job_back_and_another_worker_finishes_it(reaper_stack):
    """A worker asked to stop checkpoints and hands its job back within seconds; the job
    resumes on another worker and ends exactly as an uninterrupted run."""
    import torch

    with reaper_stack.client(reaper_stack.new_key("t4")) as api:
        x, y = blobs(200)
        ds = upload_npz(api, x, y)
        # 15 000 steps: still training when its progress first shows (1 500 were over by then).
        spec = mlp_spec(ds["id"], epochs=200, batch_size=2, log_every_steps=10, checkpoint_every=0)
        reference = wait_for(api, api.post("/v1/jobs", json=spec).json()["id"], timeout=180)
        job = api.post("/v1/jobs", json=spec).json()
        _wait_for_step(api, job["id"], 300)
        worker = reaper_stack.workers.pop(0)
        asked = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        handed = wait_for(api, job["id"], statuses=("retrying",), timeout=10)
        assert time.monotonic() - asked < 5  # handed back well inside a container's grace period
        worker.wait(timeout=30)
        assert handed["status"] == "retrying" and handed["attempts"] == 0, handed
        assert "handed back" in handed["error"] and handed["checkpoint_step"] >= 300
        reaper_stack.start_worker()
        done = wait_for(api, job["id"], timeout=180)
        assert done["status"] == "succeeded" and done["attempts"] == 1, [(a["attempt"], a["outcome"], a["reason"]) for a in done["attempt_history"]]
        got, want = _weights(api, job["id"]), _weights(api, reference["id"])
        assert all(torch.equal(got[k], want[k]) for k in want)
        assert _history(api, job["id"]) == _history(api, reference["id"])


def test_sigterm_to_the_worker_and_its_training_process_hands_the_job_back_too(reaper_stack):
    """systemd's default KillMode (and `kill -- -PGID`) sends SIGTERM to the training process
    as well as to its worker: it drains like its worker, rather than dying mid-step."""
    with reaper_stack.client(reaper_stack.new_key("t5")) as api:
        x, y = blobs(200)
        ds = upload_npz(api, x, y)
        spec = mlp_spec(ds["id"], epochs=200, batch_size=2, log_every_steps=10, checkpoint_every=0)
        job = api.post("/v1/jobs", json=spec).json()
        _wait_for_step(api, job["id"], 300)
        worker = reaper_stack.workers.pop(0)
        os.killpg(worker.pid, signal.SIGTERM)  # the worker and its training process
        handed = wait_for(api, job["id"], statuses=("retrying",), timeout=10)
        assert worker.wait(timeout=30) == 0
        assert handed["attempts"] == 0 and "handed back" in handed["error"], handed  # not "lost"
        assert handed["checkpoint_step"] >= 300
        reaper_stack.start_worker()
        done = wait_for(api, job["id"], timeout=180)
        assert done["status"] == "succeeded" and done["attempts"] == 1


def _wait_for_step(api, job_id: str, step: int, timeout: float = 120) -> None:
    """Until the job has trained past ``step``; fails (rather than hangs) when it never does."""
    deadline = time.monotonic() + timeout
    while (body := api.get(f"/v1/jobs/{job_id}").json())["progress"]["step"] < step:
        assert time.monotonic() < deadline, f"job never reached step {step}: {body}"
        time.sleep(0.02)
