"""Two senders never hold one delivery at once, on SQLite and on PostgreSQL: a claim that meets
another sender's uncommitted claim of the same row waits for it, then finds the row leased."""
import threading
from contextlib import ExitStack, contextmanager

import pytest
from sqlalchemy import select

from app import config, db
from app.migrate import upgrade
from app.models import Tenant, Webhook, WebhookDelivery
from app.models.base import new_id, utcnow
from app.webhooks import deliveries
from tests.conftest import fresh_postgres_database
from tests.embedded import _forget_settings


@contextmanager
def database(kind: str, tmp_path, monkeypatch):
    """A migrated database of ``kind`` (SQLite under tmp_path, or a fresh PostgreSQL one) as the settings' own."""
    with ExitStack() as stack:
        url = stack.enter_context(fresh_postgres_database()) if kind == "postgresql" else ""
        monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("DATABASE_URL", url)
        stack.callback(_forget_settings)
        _forget_settings()
        config.get_settings().data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(config.get_settings().resolved_database_url)
        yield


@pytest.fixture(params=["sqlite", "postgresql"])
def claims_db(request, tmp_path, monkeypatch):
    with database(request.param, tmp_path, monkeypatch):
        yield request.param


def one_due_delivery() -> str:
    with db.session_scope() as s:
        s.add(Tenant(id="tn_claims", name="claims"))
        s.flush()
        s.add(Webhook(id="wh_claims", tenant_id="tn_claims", url="http://127.0.0.1:9/", events=["job.failed"],
                      secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        s.flush()
        delivery = WebhookDelivery(id=new_id("msg"), webhook_id="wh_claims", event_type="job.failed", payload={},
                                   status="pending", attempts=0, next_attempt_at=utcnow(), created_at=utcnow())
        s.add(delivery)
    return delivery.id


def test_a_claim_racing_an_uncommitted_claim_of_the_row_gets_nothing(claims_db):
    delivery_id = one_due_delivery()
    first = db.get_session_factory()()
    try:
        (mine,) = deliveries.claim_due(db_session=first, limit=8)  # uncommitted: the row is locked
        assert mine.id == delivery_id and mine.attempt == 1
        theirs: list = []
        racer = threading.Thread(target=lambda: theirs.append(_claim()))
        racer.start()
        racer.join(0.5)  # a moment to reach the first claim's lock (PostgreSQL's row lock, SQLite's one
        # writer) and wait there; had it not reached it yet, it finds the row leased all the same
        first.commit()
    finally:
        first.close()
    racer.join(30)
    assert theirs == [[]]
    with db.get_session_factory()() as s:
        assert s.scalar(select(WebhookDelivery.attempts).where(WebhookDelivery.id == delivery_id)) == 1


def _claim():
    with db.session_scope() as s:
        return deliveries.claim_due(db_session=s, limit=8)
