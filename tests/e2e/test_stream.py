"""GET /v1/jobs/{id}/events: live, resumable, ending; on both deployments and with a lost worker."""
import os
import signal
import subprocess
import threading
import time

import httpx
import pytest

from app.client import Event, parse_sse
from tests.conftest import TEST_LIMITS
from tests.e2e.helpers import blobs, diverging_spec, mlp_spec, upload_npz, wait_for
from tests.stack import Stack


def read_events(api: httpx.Client, job_id: str, *, last_event_id: int | None = None,
                stop_after=None, timeout: float = 60) -> list[Event]:
    """Reads the stream until its end event, or until stop_after(events) is true (then hangs up)."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    got: list[Event] = []
    with api.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=timeout) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for event in parse_sse(r.iter_lines()):
            got.append(event)
            if event.event == "end" or (stop_after and stop_after(got)):
                break
    return got


def long_spec(ds_id: str, **training) -> dict:
    # About 7,700 steps, 5 s on a quiet 2-core machine (12 epochs took 1 s there and ended
    # before the first hang-up): still training when the first connection hangs up, at its
    # first step event. A step event every 20 steps keeps the replayed log small.
    return mlp_spec(ds_id, **{"epochs": 60, "batch_size": 1, "log_every_steps": 20, **training})


def test_reconnect_with_last_event_id_mid_run_loses_and_duplicates_nothing(api):
    x, y = blobs(160)
    job = api.post("/v1/jobs", json=long_spec(upload_npz(api, x, y)["id"])).json()

    first = read_events(api, job["id"], stop_after=lambda got: got[-1].event == "step")
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"  # hung up mid-run
    rest = read_events(api, job["id"], last_event_id=first[-1].id)

    events = first + rest
    ids = [e.id for e in events if e.event != "end"]
    assert ids == list(range(1, len(ids) + 1))  # every id once, in order
    assert events[-1].event == "end" and events[-1].data == {"status": "succeeded", "error": None}
    statuses = [e.data["status"] for e in events if e.event == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert events[1].data["attempt"] == 1

    # The stream carries exactly the stored history, live or replayed.
    history = api.get(f"/v1/jobs/{job['id']}/metrics", params={"limit": 100_000}).json()
    epochs = [e.data for e in events if e.event == "epoch"]
    assert len(epochs) == len(history["epochs"]) == 60
    for got, stored in zip(epochs, history["epochs"]):
        assert {k: got.get(k) for k in stored} == stored
    assert [(e.data["step"], e.data["train_loss"]) for e in events if e.event == "step"] == \
        [(p["step"], p["train_loss"]) for p in history["steps"]]
    assert read_events(api, job["id"]) == events  # a late watcher gets the same log


def test_a_finished_jobs_stream_replays_and_ends(api):
    x, y = blobs(48)
    spec = mlp_spec(upload_npz(api, x, y)["id"], epochs=2)
    job = wait_for(api, api.post("/v1/jobs", json=spec).json()["id"])
    started = time.monotonic()
    events = read_events(api, job["id"], timeout=10)
    assert time.monotonic() - started < 5
    assert [e.event for e in events][:2] == ["status", "status"]
    assert [e.event for e in events][-2:] == ["status", "end"]
    assert len([e for e in events if e.event == "epoch"]) == 2
    last = events[-2].id

    tail = read_events(api, job["id"], last_event_id=last - 2)
    assert [e.id for e in tail] == [last - 1, last, None]
    assert [e.event for e in read_events(api, job["id"], last_event_id=last)] == ["end"]
    after = api.get(f"/v1/jobs/{job['id']}/events", params={"after": last - 1}, timeout=10)
    assert [e.id for e in parse_sse(iter(after.text.splitlines()))] == [last, None]


def test_a_failed_jobs_stream_ends_with_its_reason(api):
    job = api.post("/v1/jobs", json=diverging_spec(api)).json()
    events = read_events(api, job["id"])
    assert events[-1].event == "end" and events[-1].data["status"] == "failed"
    assert "diverged" in events[-1].data["error"] and "diverged" in events[-2].data["error"]


def test_many_watchers_of_one_job_get_the_same_events(api):
    x, y = blobs(120)
    job = api.post("/v1/jobs", json=long_spec(upload_npz(api, x, y)["id"], epochs=8)).json()
    results: list[list[Event]] = [[] for _ in range(6)]

    def watch(i: int) -> None:
        results[i] = read_events(api, job["id"])

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert all(r == results[0] for r in results) and results[0][-1].event == "end"


# ---- a worker lost mid-job: the reaper's status changes reach the stream -------------

FAST_REAPER = {"LEASE_SECONDS": "2", "HEARTBEAT_SECONDS": "0.3", "REAPER_INTERVAL_SECONDS": "0.5",
               "MAX_ATTEMPTS": "2", "STREAM_PING_SECONDS": "1", **TEST_LIMITS}


@pytest.fixture(scope="module")
def reaper_stack(tmp_path_factory):
    stack = Stack("stream-reaper", tmp_path_factory.mktemp("stream-reaper"), FAST_REAPER)
    stack.start()
    yield stack
    stack.stop()


def _kill_training_child(stack: Stack) -> None:
    out = subprocess.run(["pgrep", "-P", str(stack.workers[0].pid)], capture_output=True, text=True)
    for pid in out.stdout.split():
        os.kill(int(pid), signal.SIGKILL)


def test_a_job_losing_its_worker_ends_the_stream_instead_of_hanging(reaper_stack):
    with reaper_stack.client(reaper_stack.new_key("s1")) as api:
        x, y = blobs(200)
        # Killed on each attempt's first step, so it only has to outlast that: 40 000 steps
        # (4 000 finished before the kill, once the engine's step got faster).
        job = api.post("/v1/jobs", json=long_spec(upload_npz(api, x, y)["id"], batch_size=2,
                                                  epochs=400)).json()
        seen: list[Event] = []

        def on_event(got: list[Event]) -> bool:
            e = got[-1]
            # Kill the worker's training process on the first step of each attempt.
            if e.event == "step" and (len(seen) == 0 or seen[-1].event in ("status", "rewind")):
                _kill_training_child(reaper_stack)
            seen.append(e)
            return False

        events = read_events(api, job["id"], stop_after=on_event, timeout=90)
    statuses = [(e.data["status"], e.data.get("attempt")) for e in events if e.event == "status"]
    assert statuses == [("queued", None), ("running", 1), ("retrying", 1), ("running", 2), ("failed", None)]
    requeued = [e for e in events if e.event == "status"][2]
    assert "was lost during attempt 1" in requeued.data["reason"]
    assert events[-1].event == "end" and "worker lost 2 times" in events[-1].data["error"]
