"""Packed study members through the HTTP API and a real worker (docs/studies.md "Packed members"):
a study of seeds x learning rates trains as one pack, each member equal to its spec as a lone job
(history and weights, bit for bit on the CPU); a member cancelled mid-pack ends alone; a killed
worker's pack is retried and every member resumes from its own checkpoint."""
import os
import signal
import time

import pytest
import torch
from safetensors.torch import load

from tests.conftest import TEST_LIMITS
from tests.e2e.helpers import blobs, mlp_spec, training_child, upload_npz, wait_for
from tests.e2e.test_studies import untimed, wait_study
from tests.stack import Stack

FAST_REAPER = {"LEASE_SECONDS": "2", "CHECKPOINT_MIN_GAP_SECONDS": "0", "HEARTBEAT_SECONDS": "0.3",
               "REAPER_INTERVAL_SECONDS": "0.5", "MAX_ATTEMPTS": "3", **TEST_LIMITS}


def seeds_by_lrs(ds_id: str, **training) -> dict:
    return {"base": mlp_spec(ds_id, **training), "seeds": [1, 2], "grid": {"optimizer.lr": [0.1, 0.02]},
            "objective": {"metric": "val_loss"}, "parallel": 1}


def history(api, job_id: str) -> list[dict]:
    h = api.get(f"/v1/jobs/{job_id}/metrics").json()
    return h["steps"] + untimed(h["epochs"])


def weights(api, job_id: str) -> dict:
    return load(api.get(f"/v1/jobs/{job_id}/weights").content)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def lone_run(api, job_id: str) -> str:
    """The member's spec submitted as a job of its own (it trains alone), succeeded."""
    spec = api.get(f"/v1/jobs/{job_id}/spec").json()["spec"]
    lone = api.post("/v1/jobs", json=spec).json()
    assert wait_for(api, lone["id"], timeout=120)["status"] == "succeeded"
    assert api.get(f"/v1/jobs/{lone['id']}").json()["packed_with"] is None
    return lone["id"]


def test_a_study_of_seeds_and_rates_trains_packed_each_member_as_its_lone_job(api):
    x, y = blobs(200)
    ds = upload_npz(api, x, y)
    body = seeds_by_lrs(ds["id"], epochs=4, log_every_steps=1)
    body["seeds"] = [1, 2, 3, 4]
    created = api.post("/v1/studies", json=body)
    assert created.status_code == 201, created.text
    study = wait_study(api, created.json()["id"])
    assert study["counts"] == {"succeeded": 8}, study
    # parallel 1: one slot, so one pack of all eight, formed by the claim of whichever came first.
    ((pack_id, size),) = {(m["pack_id"], m["packed_with"]) for m in study["members"]}
    assert size == 8 and pack_id in {m["job_id"] for m in study["members"]}
    assert all(m["unpackable"] is None for m in study["members"])
    member = study["members"][5]
    assert api.get(f"/v1/jobs/{member['job_id']}").json()["packed_with"] == 8
    lone = lone_run(api, member["job_id"])
    assert history(api, lone) == history(api, member["job_id"])
    assert same_weights(weights(api, lone), weights(api, member["job_id"]))
    others = [weights(api, m["job_id"]) for m in study["members"]]
    assert not same_weights(others[0], others[1])  # each member's own weights, not the pack's


def test_cancelling_a_member_mid_pack_ends_it_alone(api):
    x, y = blobs(200)
    ds = upload_npz(api, x, y)
    created = api.post("/v1/studies", json=seeds_by_lrs(ds["id"], epochs=500, batch_size=1,
                                                         log_every_steps=50)).json()
    ids = [m["job_id"] for m in created["members"]]
    deadline = time.monotonic() + 60
    while not all((j := api.get(f"/v1/jobs/{i}").json())["status"] == "running" and j["progress"]["step"] > 0
                  for i in ids):
        assert time.monotonic() < deadline, j
        time.sleep(0.1)
    started = time.monotonic()
    assert api.post(f"/v1/jobs/{ids[1]}/cancel").status_code == 202
    assert wait_for(api, ids[1], timeout=30)["status"] == "cancelled"
    print(f"cancelled in {time.monotonic() - started:.2f} s")
    steps = {i: api.get(f"/v1/jobs/{i}").json()["progress"]["step"] for i in ids}
    time.sleep(1.0)
    for i in (ids[0], ids[2], ids[3]):
        job = api.get(f"/v1/jobs/{i}").json()
        assert job["status"] == "running" and job["progress"]["step"] > steps[i], job
    api.post(f"/v1/studies/{created['id']}/cancel")
    assert [wait_for(api, i)["status"] for i in ids] == ["cancelled"] * 4


@pytest.fixture(scope="module")
def reaper_stack(tmp_path_factory):
    stack = Stack("packs-reaper", tmp_path_factory.mktemp("packs-reaper"), FAST_REAPER)
    stack.start()
    yield stack
    stack.stop()


def test_a_killed_workers_pack_is_retried_and_each_member_resumes_from_its_checkpoint(reaper_stack):
    with reaper_stack.client(reaper_stack.new_key("packs")) as api:
        x, y = blobs(200)
        ds = upload_npz(api, x, y)
        # 150 training rows at batch 2: 75 steps an epoch, a checkpoint every 3 epochs (225 steps).
        body = seeds_by_lrs(ds["id"], epochs=12, batch_size=2, log_every_steps=10, checkpoint_every=3)
        study = api.post("/v1/studies", json=body).json()
        ids = [m["job_id"] for m in study["members"]]
        deadline = time.monotonic() + 90
        while api.get(f"/v1/jobs/{ids[0]}").json()["progress"]["step"] < 400:
            assert time.monotonic() < deadline, reaper_stack.logs()
            time.sleep(0.02)
        os.kill(training_child(reaper_stack.workers[0]), signal.SIGKILL)
        done = wait_study(api, study["id"], timeout=240)
        assert done["counts"] == {"succeeded": 4}, (done, reaper_stack.logs())
        jobs = [api.get(f"/v1/jobs/{i}").json() for i in ids]
        assert [j["attempts"] for j in jobs] == [2] * 4
        # The retry's first claim packs whichever members wait by then: the leases lapse one by one.
        sizes = [j["packed_with"] for j in jobs]
        assert max(s or 1 for s in sizes) >= 2 and all(s is None or 2 <= s <= 4 for s in sizes), sizes
        assert all(j["checkpoint_step"] is None or j["checkpoint_step"] >= 225 for j in jobs)
        assert "resumes from step" in reaper_stack.logs()
        for i in (ids[0], ids[3]):  # resumed exactly: as the same spec trained alone, uninterrupted
            lone = lone_run(api, i)
            assert history(api, lone) == history(api, i)
            assert same_weights(weights(api, lone), weights(api, i))
