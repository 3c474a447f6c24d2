"""The sender against a real receiver (an http.server on 127.0.0.1): a job's end becomes a signed
delivery, retried with the same webhook-id after a 5xx, backed off after a dead port, given up a day
after the event, never held up by another webhook's slow receiver, and refused at send time when the
URL resolves to a private address. The clock is driven through the database, never by sleeping."""
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook as Verifier

from app import config, db
from app.jobs import lifecycle
from app.jobs.lifecycle import JobStatus
from app.models import Webhook, WebhookDelivery
from app.models.base import new_id, utcnow
from app.webhooks import deliveries, signing
from app.webhooks.sender import Sender
from tests.embedded import TENANT, add_job, embedded  # noqa: F401 (a fixture)
from tests.webhooks.receiver import dead_port, receiver


@pytest.fixture
def hooks_db(monkeypatch, request):
    """The embedded database, with WEBHOOK_ALLOW_PRIVATE=1 (the receiver is on 127.0.0.1)."""
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE", "1")
    request.getfixturevalue("embedded")


@pytest.fixture
def inbox():
    with receiver() as r:
        yield r


def add_webhook(url: str, events=("job.succeeded", "job.failed")) -> Webhook:
    with db.get_session_factory()() as s:
        hook = Webhook(id=new_id("wh"), tenant_id=TENANT, url=url, events=list(events),
                       secret=signing.generate_secret())
        s.add(hook)
        s.commit()
        return hook


def finished_job(status=JobStatus.SUCCEEDED, error=None) -> str:
    """A job claimed and ended through the life cycle, as a worker ends one."""
    job_id = add_job({"training": {"epochs": 1}}, None)
    with db.session_scope() as s:
        assert lifecycle.claim(db_session=s, job_id=job_id, worker_id="w", lease_seconds=60) == 1
    with db.session_scope() as s:
        assert lifecycle.finish(db_session=s, job_id=job_id, worker_id="w", status=status, error=error)
    return job_id


def deliveries_of(hook: Webhook) -> list[WebhookDelivery]:
    with db.get_session_factory()() as s:
        return list(s.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
                              .order_by(WebhookDelivery.created_at)))


def send_all(sender: Sender) -> None:
    """Polls until nothing is due and nothing in flight (each send ends on its own: answered or refused)."""
    while sender.poll() or sender.in_flight():
        sender.wait(5)


def make_due(delivery_id: str, **values) -> None:
    with db.session_scope() as s:
        s.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                  .values(next_attempt_at=utcnow() - timedelta(seconds=1), **values))


@pytest.fixture
def sender(hooks_db):
    s = Sender()
    yield s
    s.stop()


def test_a_finished_job_is_delivered_signed_as_standard_webhooks(sender, inbox):
    hook = add_webhook(inbox.url("/ok"))
    job_id = finished_job()
    (pending,) = deliveries_of(hook)  # written with the finish, in its transaction
    assert (pending.status, pending.attempts, pending.event_type) == ("pending", 0, "job.succeeded")
    send_all(sender)
    (got,) = inbox.at("/ok")
    payload = Verifier(hook.secret).verify(got.body, got.headers)
    assert got.headers["webhook-id"] == pending.id and got.headers["content-type"] == "application/json"
    assert payload["type"] == "job.succeeded" and payload["data"]["id"] == job_id
    assert payload["data"]["status"] == "succeeded"
    assert payload["data"]["links"]["weights"] == f"/v1/jobs/{job_id}/weights"
    (done,) = deliveries_of(hook)
    assert (done.status, done.attempts, done.last_status_code, done.next_attempt_at) == ("delivered", 1, 200, None)


def test_a_finish_that_rolls_back_leaves_no_delivery(sender, inbox):
    hook = add_webhook(inbox.url("/ok"))
    job_id = add_job({"training": {"epochs": 1}}, None)
    with db.session_scope() as s:
        lifecycle.claim(db_session=s, job_id=job_id, worker_id="w", lease_seconds=60)
    session = db.get_session_factory()()
    try:
        assert lifecycle.finish(db_session=session, job_id=job_id, worker_id="w", status=JobStatus.SUCCEEDED)
        assert session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == hook.id))
    finally:
        session.rollback()
        session.close()
    assert deliveries_of(hook) == []
    send_all(sender)
    assert inbox.at("/ok") == []


def test_an_event_the_webhook_did_not_ask_for_is_not_recorded(sender, inbox):
    hook = add_webhook(inbox.url("/ok"), events=["job.failed"])
    finished_job(JobStatus.SUCCEEDED)
    assert deliveries_of(hook) == []
    finished_job(JobStatus.FAILED, error="diverged")
    (failed,) = deliveries_of(hook)
    assert failed.event_type == "job.failed" and failed.payload["data"]["error"] == "diverged"


def test_a_500_then_a_200_is_two_attempts_with_one_webhook_id(sender, inbox):
    inbox.answers["/flaky"] = [500, 200]
    hook = add_webhook(inbox.url("/flaky"))
    finished_job()
    send_all(sender)
    (first,) = deliveries_of(hook)
    assert (first.status, first.attempts, first.last_status_code, first.last_error) == ("pending", 1, 500, "HTTP 500")
    assert timedelta(seconds=4.4) <= first.next_attempt_at - first.last_attempt_at <= timedelta(seconds=5.6)
    make_due(first.id)
    send_all(sender)
    (second,) = deliveries_of(hook)
    assert (second.status, second.attempts, second.last_status_code) == ("delivered", 2, 200)
    requests = inbox.at("/flaky")
    assert [r.headers["webhook-id"] for r in requests] == [first.id, first.id]
    for r in requests:
        Verifier(hook.secret).verify(r.body, r.headers)
    assert json.loads(requests[0].body) == json.loads(requests[1].body)


def test_a_dead_port_schedules_retries_further_and_further_apart(sender):
    hook = add_webhook(f"http://127.0.0.1:{dead_port()}/hook")
    finished_job()
    waits = []
    for attempt in (1, 2, 3):
        send_all(sender)
        (d,) = deliveries_of(hook)
        assert (d.status, d.attempts, d.last_status_code) == ("pending", attempt, None)
        assert "could not connect" in d.last_error
        waits.append((d.next_attempt_at - d.last_attempt_at).total_seconds())
        make_due(d.id)
    expected = deliveries.BACKOFF_SECONDS[:3]
    assert all(b * 0.9 <= w <= b * 1.1 for w, b in zip(waits, expected)), (waits, expected)


def test_a_day_after_the_event_a_failing_delivery_is_given_up(sender):
    hook = add_webhook(f"http://127.0.0.1:{dead_port()}/hook")
    finished_job()
    (d,) = deliveries_of(hook)
    make_due(d.id, created_at=utcnow() - timedelta(hours=23, minutes=59), attempts=9)
    send_all(sender)
    (last_try,) = deliveries_of(hook)  # the next try is the give-up time itself, not 4 h past it
    assert last_try.status == "pending" and last_try.next_attempt_at == last_try.created_at + timedelta(hours=24)
    make_due(d.id, created_at=utcnow() - timedelta(hours=24, seconds=1))
    send_all(sender)
    (given_up,) = deliveries_of(hook)
    assert (given_up.status, given_up.attempts, given_up.next_attempt_at) == ("failed", 11, None)
    assert sender.poll() == 0


def test_a_slow_receiver_does_not_hold_up_another_webhooks_delivery(sender, inbox):
    import threading

    inbox.held["/slow"] = threading.Event()
    slow, quick = add_webhook(inbox.url("/slow")), add_webhook(inbox.url("/quick"))
    finished_job()  # one event, a delivery to each
    assert sender.poll() == 2
    inbox.wait_for("/slow")  # the slow one is being answered, and is held there
    inbox.wait_for("/quick")
    while deliveries_of(quick)[0].status != "delivered":
        sender.wait(5)
    assert deliveries_of(slow)[0].status == "pending" and not inbox.held["/slow"].is_set()
    inbox.held["/slow"].set()
    send_all(sender)
    assert deliveries_of(slow)[0].status == "delivered"


def test_one_webhooks_backlog_goes_one_at_a_time_and_two_senders_never_share_a_delivery(sender, inbox):
    hook = add_webhook(inbox.url("/ok"))
    for _ in range(3):
        finished_job()
    with db.session_scope() as s:
        first = deliveries.claim_due(db_session=s, limit=8)
    with db.session_scope() as s:
        second = deliveries.claim_due(db_session=s, limit=8, busy=frozenset({hook.id}))
        third = deliveries.claim_due(db_session=s, limit=8)  # another sender: the claimed one is leased
    assert len(first) == 1 and second == [] and len(third) == 1 and third[0].id != first[0].id


def test_an_address_the_send_resolves_to_is_checked_again_at_send_time(hooks_db, monkeypatch, inbox):
    hook = add_webhook(inbox.url("/ok", host="localhost"))  # stored while private addresses were allowed
    finished_job()
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE", "0")
    config.get_settings.cache_clear()
    strict = Sender()
    try:
        send_all(strict)
    finally:
        strict.stop()
    (d,) = deliveries_of(hook)
    assert d.status == "pending" and d.last_status_code is None and inbox.at("/ok") == []
    assert "refused" in d.last_error and "127.0.0.1" in d.last_error and "loopback" in d.last_error
