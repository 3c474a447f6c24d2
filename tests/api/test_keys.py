"""A tenant manages its own API keys over /v1/keys: listed without their secrets, created
with the secret shown once, revoked at once in this process, refused past their expiry,
their last use recorded to the minute, and never another tenant's."""
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from app.auth.service import hash_key
from app.config import get_settings
from app.db import get_session_factory
from app.models import ApiKey
from tests.e2e.helpers import errors_for


def key_of(client) -> str:
    return client.async_client.headers["authorization"].split()[1]


def listed(api) -> dict[str, dict]:
    page = api.get("/v1/keys")
    assert page.status_code == 200, page.text
    return {k["id"]: k for k in page.json()["items"]}


def create(api, **body) -> dict:
    r = api.post("/v1/keys", json={"name": "ci", **body})
    assert r.status_code == 201, r.text
    return r.json()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_the_list_never_shows_a_secret_and_a_created_key_is_shown_once_and_works(deployment, api):
    (own_id, own), = listed(api).items()
    assert own["prefix"] == key_of(api)[:10] and own["status"] == "active" and own["expires_at"] is None
    made = create(api, name="laptop")
    assert made["key"].startswith("ty_") and made["prefix"] == made["key"][:10]
    assert made["name"] == "laptop" and made["status"] == "active" and made["last_used_at"] is None
    page = api.get("/v1/keys")
    assert page.json()["total"] == 2 and [k["id"] for k in page.json()["items"]] == [made["id"], own_id]
    for secret in (made["key"], key_of(api), hash_key(made["key"]), hash_key(key_of(api))):
        assert secret not in page.text
    assert all(set(k) == {"id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at",
                          "status"} for k in page.json()["items"])
    with deployment.client(made["key"]) as new:
        assert set(listed(new)) == {own_id, made["id"]}  # the same tenant


@pytest.mark.services
def test_revoking_a_key_refuses_it_at_once_and_again_changes_nothing(deployment, api):
    assert get_settings().auth_cache_seconds > 0  # so "at once" is the revocation's doing, not the cache's
    made = create(api)
    with deployment.client(made["key"]) as other:
        assert other.get("/v1/jobs").status_code == 200  # now remembered by this process
        assert api.delete(f"/v1/keys/{made['id']}").status_code == 204
        refused = other.get("/v1/jobs")
        assert refused.status_code == 401 and refused.json()["detail"] == "unknown or revoked API key"
    revoked = listed(api)[made["id"]]
    assert revoked["status"] == "revoked" and revoked["revoked_at"] is not None
    assert api.delete(f"/v1/keys/{made['id']}").status_code == 204
    assert listed(api)[made["id"]]["revoked_at"] == revoked["revoked_at"]
    assert api.get("/v1/jobs").status_code == 200  # the other key is untouched


def test_a_key_may_revoke_itself(deployment, api):
    made = create(api)
    with deployment.client(made["key"]) as itself:
        assert itself.delete(f"/v1/keys/{made['id']}").status_code == 204
        assert itself.get("/v1/keys").status_code == 401
    assert listed(api)[made["id"]]["status"] == "revoked"


@pytest.mark.parametrize("body,field,words", [
    ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at", "must be in the future"),
    ({"expires_at": "2020-01-01"}, "expires_at", "must be in the future"),
    ({"expires_at": "tomorrow"}, "expires_at", "datetime"),
    ({"expires_at": "9999-12-31T23:59:59-23:00"}, "expires_at", "before the year 10000"),
    ({"name": ""}, "name", "at least 1 character"),
    ({"name": "a\x00b"}, "name", "NUL"),
    ({"key": "ty_mine"}, "key", "Extra inputs"),
], ids=["past", "past date", "not a time", "past year 9999", "empty name", "NUL", "own secret"])
def test_a_bad_key_request_is_a_422_naming_the_field_and_makes_nothing(api, body, field, words):
    r = api.post("/v1/keys", json={"name": "ci", **body})
    assert r.status_code == 422, r.text
    assert words in errors_for(r)[field]
    assert api.get("/v1/keys").json()["total"] == 1


def test_a_naive_expiry_is_read_as_utc(api):
    at = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0, tzinfo=None)
    made = create(api, expires_at=at.isoformat())
    assert datetime.fromisoformat(made["expires_at"]) == at.replace(tzinfo=timezone.utc)


@pytest.mark.services
def test_an_expired_key_is_refused_saying_so_and_the_cache_does_not_outlive_it(deployment, api):
    assert get_settings().auth_cache_seconds > 2
    expires = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    made = create(api, expires_at=iso(expires))
    with deployment.client(made["key"]) as brief:
        assert brief.get("/v1/jobs").status_code == 200  # remembered, but only until it expires
        time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 0.2)
        refused = brief.get("/v1/jobs")
        assert refused.status_code == 401, refused.text
        assert refused.json()["detail"].startswith("expired API key")
        assert refused.json()["errors"][0]["field"] == "Authorization"
    assert listed(api)[made["id"]]["status"] == "expired"


def test_last_used_is_written_on_authentication_at_most_once_a_minute(deployment, api, monkeypatch):
    monkeypatch.setattr(get_settings(), "auth_cache_seconds", 0)  # every request looks its key up
    made = create(api)
    assert listed(api)[made["id"]]["last_used_at"] is None
    with deployment.client(made["key"]) as used:
        before = datetime.now(timezone.utc)
        assert used.get("/v1/jobs").status_code == 200
        first = datetime.fromisoformat(listed(api)[made["id"]]["last_used_at"])
        assert before - timedelta(seconds=1) <= first <= datetime.now(timezone.utc)
        used.get("/v1/jobs")
        assert datetime.fromisoformat(listed(api)[made["id"]]["last_used_at"]) == first  # within the minute
        with get_session_factory()() as db:
            db.execute(update(ApiKey).where(ApiKey.id == made["id"])
                       .values(last_used_at=first - timedelta(minutes=2)))
            db.commit()
        used.get("/v1/jobs")
    assert datetime.fromisoformat(listed(api)[made["id"]]["last_used_at"]) >= first


@pytest.mark.services
def test_tenants_see_and_revoke_only_their_own_keys(api, other_api):
    mine = create(api)
    assert mine["id"] not in listed(other_api) and len(listed(other_api)) == 1
    r = other_api.delete(f"/v1/keys/{mine['id']}")
    assert r.status_code == 404 and errors_for(r) == {"key_id": f"no API key '{mine['id']}'"}
    assert listed(api)[mine["id"]]["status"] == "active"
    assert api.delete("/v1/keys/key_nothing").status_code == 404
