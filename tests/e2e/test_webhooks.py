"""Webhooks through the real API and worker, on both deployments: a job that finishes is sent to a
real receiver on 127.0.0.1 as a signed job.succeeded (checked with the Standard Webhooks library),
and shows as delivered in the deliveries, from the Python client and from the `trainyard` command.
The stack runs with WEBHOOK_ALLOW_PRIVATE=1 (tests/conftest.py): the receiver is on loopback."""
import os
import subprocess
import sys
import time

from standardwebhooks.webhooks import Webhook as Verifier

from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for
from tests.stack import ROOT
from tests.webhooks.receiver import receiver


def delivered(client, webhook_id: str, timeout: float = 60) -> dict:
    """The webhook's one delivery once the sender has recorded it delivered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = client.webhooks.deliveries(webhook_id)["items"]
        if items and items[0]["status"] == "delivered":
            return items[0]
        time.sleep(0.1)
    raise AssertionError(f"not delivered: {items}")


def trainyard(stack, key: str, *args: str) -> str:
    env = {**os.environ, "TRAINYARD_URL": stack.url, "TRAINYARD_API_KEY": key, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "app.cli", "webhooks", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_finished_job_reaches_the_receiver_signed_and_shows_delivered(stack, api, client, key):
    with receiver() as inbox:
        hook = client.webhooks.create(inbox.url("/trainyard"), ["job.succeeded", "job.failed"])
        job = api.post("/v1/jobs", json={**mlp_spec(upload_npz(api, *blobs(60))["id"], epochs=2),
                                         "name": "hooked", "labels": {"team": "hooks"}}).json()
        assert wait_for(api, job["id"])["status"] == "succeeded"
        (got,) = inbox.wait_for("/trainyard")
        payload = Verifier(hook["secret"]).verify(got.body, got.headers)
        assert payload["type"] == "job.succeeded"
        data = payload["data"]
        assert (data["id"], data["name"], data["labels"], data["status"]) == (job["id"], "hooked", {"team": "hooks"},
                                                                              "succeeded")
        assert data["metrics"]["train_loss"] > 0 and data["links"]["weights"] == f"/v1/jobs/{job['id']}/weights"
        record = delivered(client, hook["id"])
        assert record["id"] == got.headers["webhook-id"] and record["attempts"] == 1
        assert record["last_status_code"] == 200
        listing = trainyard(stack, key, "deliveries", hook["id"])
        assert record["id"] in listing and "delivered" in listing and "job.succeeded" in listing
        trainyard(stack, key, "delete", hook["id"])
        assert hook["id"] not in [h["id"] for h in client.webhooks.list()["items"]]


def test_the_cli_creates_a_webhook_showing_its_secret_once_and_lists_it(stack, key, client):
    made = trainyard(stack, key, "create", "http://127.0.0.1:9/hook", "-e", "job.failed", "-e", "study.completed")
    (webhook_id,) = [word.rstrip(":") for word in made.split() if word.startswith("wh_")]
    (secret,) = [word for word in made.split() if word.startswith("whsec_")]
    listing = trainyard(stack, key, "list")
    assert webhook_id in listing and "job.failed, study.completed" in listing and secret not in listing
    client.webhooks.delete(webhook_id)
