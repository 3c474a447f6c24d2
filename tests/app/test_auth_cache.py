"""An API process remembers live keys' tenants for AUTH_CACHE_SECONDS (app/auth/service.py)."""
import pytest
from sqlalchemy.orm import sessionmaker

from app.auth import service
from app.config import get_settings
from app.db import make_engine
from app.migrate import upgrade
from app.models import ApiKey
from app.models.base import utcnow


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade(url)
    engine = make_engine(url)
    monkeypatch.setattr(service, "_tenants", {})
    with sessionmaker(bind=engine, expire_on_commit=False)() as session:
        yield session
    engine.dispose()


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(service, "monotonic", lambda: now[0])
    return now


def revoke(db, key: str) -> None:
    db.query(ApiKey).filter(ApiKey.key_hash == service.hash_key(key)).one().revoked_at = utcnow()
    db.flush()


def test_a_revoked_key_works_until_its_entry_expires_then_never(db, clock):
    created = service.create_key(db_session=db, name="k", tenant_name="acme")
    assert service.tenant_for_key(db_session=db, key=created.key) == created.tenant_id
    revoke(db, created.key)
    clock[0] += get_settings().auth_cache_seconds - 0.1
    assert service.tenant_for_key(db_session=db, key=created.key) == created.tenant_id
    clock[0] += 0.2
    assert service.tenant_for_key(db_session=db, key=created.key) is None
    assert service.tenant_for_key(db_session=db, key=created.key) is None


def test_unknown_keys_are_not_remembered(db, clock):
    assert service.tenant_for_key(db_session=db, key="ty_nope") is None
    assert service._tenants == {}


def test_zero_seconds_looks_every_key_up(db, clock, monkeypatch):
    monkeypatch.setattr(get_settings(), "auth_cache_seconds", 0)
    created = service.create_key(db_session=db, name="k", tenant_name="acme")
    assert service.tenant_for_key(db_session=db, key=created.key) == created.tenant_id
    revoke(db, created.key)
    assert service.tenant_for_key(db_session=db, key=created.key) is None
