"""/v1/webhooks in process: created with the secret shown once (generated when none is given),
listed without it, deleted with its pending deliveries, another tenant's a 404; a bad url, event
type or secret is a 422 naming the field, and so is a URL whose host is or resolves to a loopback,
private, link-local or metadata address (this deployment does not set WEBHOOK_ALLOW_PRIVATE).
DNS is outside us: a test name resolves to the address a test gives it."""
import socket

import pytest
from sqlalchemy import func, select

from app.db import get_session_factory
from app.models import WebhookDelivery
from app.webhooks.outbox import EVENT_TYPES
from tests.api.routes import queued_job
from tests.e2e.helpers import blobs, errors_for, upload_npz

PUBLIC = "93.184.215.14"  # example.com's: a global address
NAMES = {"hooks.example.com": PUBLIC, "rebound.example.com": "127.0.0.1", "metadata.example.com": "169.254.169.254",
         "inside.example.com": "10.1.2.3"}


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in NAMES:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (NAMES[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def create(api, **body) -> dict:
    r = api.post("/v1/webhooks", json={"url": "https://hooks.example.com/trainyard", "events": ["job.succeeded"],
                                       **body})
    assert r.status_code == 201, r.text
    return r.json()


def listed(api) -> list[dict]:
    r = api.get("/v1/webhooks")
    assert r.status_code == 200, r.text
    return r.json()["items"]


@pytest.mark.services
def test_a_webhook_is_created_with_its_secret_shown_once_and_listed_without_it(api):
    made = create(api, events=["job.succeeded", "job.failed", "job.succeeded"])
    assert made["id"].startswith("wh_") and made["events"] == ["job.succeeded", "job.failed"]
    assert made["secret"].startswith("whsec_") and made["url"] == "https://hooks.example.com/trainyard"
    given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    mine = create(api, url=f"http://{PUBLIC}:8443/in", secret=given, events=list(EVENT_TYPES))
    assert mine["secret"] == given
    page = api.get("/v1/webhooks")
    assert page.json()["total"] == 2 and [h["id"] for h in page.json()["items"]] == [mine["id"], made["id"]]
    assert made["secret"] not in page.text and given not in page.text
    assert all(set(h) == {"id", "url", "events", "created_at"} for h in page.json()["items"])


@pytest.mark.parametrize("body, field, says", [
    ({"url": "ftp://hooks.example.com/x"}, "url", "http:// or https://"),
    ({"url": "hooks.example.com/x"}, "url", "http:// or https://"),
    ({"url": "http:///path"}, "url", ""),
    ({"events": []}, "events", "at least 1"),
    ({"events": ["job.done"]}, "events", "unknown event type 'job.done'; known: job.running"),
    ({"secret": "hunter2"}, "secret", "whsec_"),
    ({"secret": "whsec_c2hvcnQ="}, "secret", "24 to 64 bytes, got 5"),
    ({"colour": "red"}, "colour", "Extra inputs"),
])
def test_a_bad_field_is_a_422_naming_it_and_nothing_is_stored(api, body, field, says):
    r = api.post("/v1/webhooks", json={"url": "https://hooks.example.com/x", "events": ["job.failed"], **body})
    assert r.status_code == 422, r.text
    assert says in errors_for(r)[field]
    assert listed(api) == []


@pytest.mark.parametrize("url, says", [
    ("http://127.0.0.1:8000/hook", "loopback"),
    ("http://localhost/hook", "'localhost' resolves to 127.0.0.1, a loopback address"),
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://10.0.0.5/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://metadata.example.com/hook", "'metadata.example.com' resolves to 169.254.169.254, a cloud metadata"),
    ("https://rebound.example.com/hook", "resolves to 127.0.0.1, a loopback address"),
    ("https://inside.example.com/hook", "10.1.2.3, a private address"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://nowhere.invalid/hook", "does not resolve"),
])
def test_a_url_on_a_loopback_private_link_local_or_metadata_address_is_refused_on_url(api, url, says):
    r = api.post("/v1/webhooks", json={"url": url, "events": ["job.failed"]})
    assert r.status_code == 422, r.text
    assert says in errors_for(r)["url"], r.text
    assert listed(api) == []


def pending_deliveries(webhook_id: str) -> int:
    with get_session_factory()() as s:
        return s.scalar(select(func.count()).select_from(WebhookDelivery)
                        .where(WebhookDelivery.webhook_id == webhook_id))


@pytest.mark.services
def test_an_event_is_a_listed_delivery_and_deleting_the_webhook_deletes_its_pending_ones(api):
    hook = create(api, events=["job.cancelled"])
    job = queued_job(api, upload_npz(api, *blobs(60))["id"])
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    page = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()
    (delivery,) = page["items"]
    assert page["total"] == 1 and delivery["id"].startswith("msg_") and delivery["event_type"] == "job.cancelled"
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("pending", 0, None)
    data = delivery["payload"]["data"]
    assert delivery["payload"]["type"] == "job.cancelled" and data["id"] == job["id"]
    assert data["reason"] == "cancelled by request" and data["links"]["job"] == f"/v1/jobs/{job['id']}"
    assert api.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"status": "delivered"}).json()["items"] == []
    assert api.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    assert pending_deliveries(hook["id"]) == 0
    assert api.delete(f"/v1/webhooks/{hook['id']}").status_code == 404
    assert api.get(f"/v1/webhooks/{hook['id']}/deliveries").status_code == 404


def test_another_tenants_webhook_is_a_404_and_theirs_are_not_listed(api, other_api):
    hook = create(api)
    assert other_api.delete(f"/v1/webhooks/{hook['id']}").status_code == 404
    assert other_api.get(f"/v1/webhooks/{hook['id']}/deliveries").status_code == 404
    assert listed(other_api) == [] and [h["id"] for h in listed(api)] == [hook["id"]]


def test_a_cancelled_study_is_a_study_event_and_its_members_job_events(api):
    from tests.api.routes import held_study

    hook = create(api, events=["study.cancelled", "job.cancelled"])
    study = held_study(api, upload_npz(api, *blobs(60))["id"])
    assert api.post(f"/v1/studies/{study['id']}/cancel").status_code == 200
    items = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"]
    assert sorted(d["event_type"] for d in items) == ["job.cancelled", "job.cancelled", "study.cancelled"]
    (event,) = [d["payload"] for d in items if d["event_type"] == "study.cancelled"]
    assert event["data"]["id"] == study["id"] and event["data"]["status"] == "cancelled"
    # The members as they were when the study's status changed: a cancel ends the study, then its members.
    assert event["data"]["members"] == {"held": 1, "queued": 1} and event["data"]["planned"] == 2
    members = {d["payload"]["data"]["id"] for d in items if d["event_type"] == "job.cancelled"}
    assert members == {m["job_id"] for m in study["members"]}


def test_a_study_whose_members_all_ended_is_a_study_completed_event(api):
    from tests.api.routes import held_study
    from worker.runner import run_job

    hook = create(api, events=["study.completed"])
    study = held_study(api, upload_npz(api, *blobs(60))["id"])
    for member in study["members"]:  # the worker's runner in this process; the second released as the first ends
        run_job(member["job_id"])
    (delivery,) = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"]
    data = delivery["payload"]["data"]
    assert delivery["event_type"] == "study.completed" and data["id"] == study["id"]
    assert data["members"] == {"succeeded": 2} and data["links"]["study"] == f"/v1/studies/{study['id']}"
