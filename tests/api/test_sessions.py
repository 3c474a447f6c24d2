"""Dashboard sign-in: the API key once in a form's body, then an HttpOnly SameSite=Strict session
cookie that authenticates the API's routes for the same tenant; state-changing requests need the
page's CSRF token; signing out, or revoking the key, ends the session."""
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from app.auth.service import hash_key
from app.db import get_session_factory
from app.models import ApiKey, BrowserSession
from app.ui.sessions import _digest
from tests.e2e.helpers import blobs, mlp_spec, upload_npz


@pytest.fixture
def browser(deployment):
    """A client with no Authorization header: it keeps the cookies it is given, as a browser does."""
    with deployment.client(None) as client:
        yield client


def sign_in(browser, key: str, next_path: str = "/") -> str:
    r = browser.post("/signin", data={"api_key": key, "next": next_path}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["location"]


def csrf_of(deployment, browser) -> str:
    token = browser.async_client.cookies["trainyard_session"]
    with get_session_factory()() as db:
        return db.query(BrowserSession).filter_by(token_hash=_digest(token)).one().csrf_token


def test_the_sign_in_page_is_a_form_that_posts_the_key(browser):
    page = browser.get("/signin", params={"next": "/jobs"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'action="/signin"' in page.text and 'type="password"' in page.text and 'value="/jobs"' in page.text


def test_signing_in_sets_an_http_only_strict_cookie_and_no_key_anywhere(deployment, browser):
    key = deployment.new_key()
    r = browser.post("/signin", data={"api_key": key, "next": "/jobs?status=running"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/jobs?status=running"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("trainyard_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/" in cookie and "Max-Age=43200" in cookie
    assert key not in cookie and key not in r.headers["location"]


def test_the_cookie_sees_exactly_what_the_keys_tenant_sees(deployment, api, other_api, browser):
    x, y = blobs(40)
    mine = api.post("/v1/jobs", json=mlp_spec(upload_npz(api, x, y)["id"])).json()["id"]
    theirs = other_api.post("/v1/jobs", json=mlp_spec(upload_npz(other_api, x, y)["id"])).json()["id"]
    key = api.async_client.headers["authorization"].split()[1]
    sign_in(browser, key)
    listed = [j["id"] for j in browser.get("/v1/jobs").json()["items"]]
    assert mine in listed and theirs not in listed
    assert browser.get(f"/v1/jobs/{theirs}").status_code == 404


def test_state_changing_requests_need_the_csrf_token(deployment, api, browser):
    x, y = blobs(40)
    job = api.post("/v1/jobs", json=mlp_spec(upload_npz(api, x, y)["id"])).json()["id"]
    sign_in(browser, api.async_client.headers["authorization"].split()[1])
    refused = browser.post(f"/v1/jobs/{job}/cancel")
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["field"] == "X-CSRF-Token"
    assert api.get(f"/v1/jobs/{job}").json()["status"] == "queued"  # nothing changed
    wrong = browser.post(f"/v1/jobs/{job}/cancel", headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    done = browser.post(f"/v1/jobs/{job}/cancel", headers={"X-CSRF-Token": csrf_of(deployment, browser)})
    assert done.status_code in (200, 202), done.text
    assert api.get(f"/v1/jobs/{job}").json()["status"] == "cancelled"


def test_a_wrong_key_is_a_401_page_and_no_session(browser):
    r = browser.post("/signin", data={"api_key": "ty_not-a-key"}, follow_redirects=False)
    assert r.status_code == 401 and "unknown or revoked API key" in r.text and "ty_not-a-key" not in r.text
    assert "set-cookie" not in r.headers
    assert browser.get("/v1/jobs").status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "jobs"])
def test_sign_in_forwards_only_to_a_path_on_this_site(deployment, browser, target):
    assert sign_in(browser, deployment.new_key(), target) == "/"


def test_signing_out_ends_the_session(deployment, browser):
    sign_in(browser, deployment.new_key())
    assert browser.get("/v1/jobs").status_code == 200
    token = browser.async_client.cookies["trainyard_session"]
    assert browser.post("/signout", data={"csrf_token": "guess"}, follow_redirects=False).status_code == 403
    out = browser.post("/signout", data={"csrf_token": csrf_of(deployment, browser)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    browser.async_client.cookies.set("trainyard_session", token)  # a copy kept by an attacker
    r = browser.get("/v1/jobs")
    assert r.status_code == 401 and "session has ended" in r.json()["errors"][0]["message"]


def test_revoking_the_key_or_expiry_ends_its_sessions(deployment, browser):
    key = deployment.new_key()
    sign_in(browser, key)
    token = browser.async_client.cookies["trainyard_session"]
    with get_session_factory()() as db:
        db.execute(update(BrowserSession).where(BrowserSession.token_hash == _digest(token))
                   .values(expires_at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
        db.commit()
    assert browser.get("/v1/jobs").status_code == 401
    sign_in(browser, key)
    assert browser.get("/v1/jobs").status_code == 200
    with get_session_factory()() as db:
        db.execute(update(ApiKey).where(ApiKey.key_hash == hash_key(key)).values(revoked_at=datetime.now(timezone.utc)))
        db.commit()
    assert browser.get("/v1/jobs").status_code == 401


@pytest.mark.services
def test_a_keys_expiry_ends_its_sessions_and_an_expired_key_cannot_sign_in(deployment, api, browser):
    expires = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    made = api.post("/v1/keys", json={"name": "brief", "expires_at": expires.isoformat()})
    assert made.status_code == 201, made.text
    r = browser.post("/signin", data={"api_key": made.json()["key"]}, follow_redirects=False)
    assert r.status_code == 303 and int(r.headers["set-cookie"].split("Max-Age=")[1].split(";")[0]) <= 2
    assert browser.get("/v1/jobs").status_code == 200
    token = browser.async_client.cookies["trainyard_session"]
    with get_session_factory()() as db:  # the session row outlasting the key: the key's expiry still ends it
        db.execute(update(BrowserSession).where(BrowserSession.token_hash == _digest(token))
                   .values(expires_at=datetime(2100, 1, 1, tzinfo=timezone.utc)))
        db.commit()
    time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 0.2)
    browser.async_client.cookies.set("trainyard_session", token)  # as a browser ignoring Max-Age would
    ended = browser.get("/v1/jobs")
    assert ended.status_code == 401 and "session has ended" in ended.json()["detail"]
    again = browser.post("/signin", data={"api_key": made.json()["key"]}, follow_redirects=False)
    assert again.status_code == 401 and "expired API key" in again.text and "set-cookie" not in again.headers


def test_a_bearer_key_still_needs_no_csrf_token(api):
    assert api.post("/v1/jobs", json={}).status_code == 422  # validated, not refused for CSRF


@pytest.mark.parametrize("path", ["/", "/jobs/job_x", "/compare?jobs=a,b", "/studies", "/studies/st_x", "/datasets",
                                  "/submit"])
def test_every_page_sends_a_stranger_to_sign_in_and_back(deployment, browser, path):
    r = browser.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/signin?next=")
    back = sign_in(browser, deployment.new_key(), path)
    assert back == path
    page = browser.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'<meta name="csrf-token" content="{csrf_of(deployment, browser)}">' in page.text


@pytest.mark.services
def test_twenty_pages_watching_one_job_share_one_stream_tail(deployment, api, browser):
    """The dashboard's EventSource, signed in by the cookie, joins the job's one shared tail: twenty
    open pages on a job cost one read per wake-up, as one does."""
    import asyncio

    from app.jobs.stream import get_hub

    x, y = blobs(40)
    job = api.post("/v1/jobs", json=mlp_spec(upload_npz(api, x, y)["id"])).json()["id"]
    sign_in(browser, api.async_client.headers["authorization"].split()[1])
    client = browser.async_client

    async def watch() -> str:
        async with client.stream("GET", f"/v1/jobs/{job}/events") as r:
            assert r.status_code == 200
            return "".join([chunk async for chunk in r.aiter_text()])

    async def twenty_then_cancel():
        watchers = [asyncio.ensure_future(watch()) for _ in range(20)]
        for _ in range(200):
            tail = get_hub().tails.get(job)
            if tail is not None and len(tail.watchers) == 20:
                break
            await asyncio.sleep(0.02)
        shared = len(get_hub().tails[job].watchers)  # one tail for the job, holding every page
        await client.post(f"/v1/jobs/{job}/cancel", headers={"X-CSRF-Token": csrf})
        return shared, await asyncio.wait_for(asyncio.gather(*watchers), 30)

    csrf = csrf_of(deployment, browser)
    shared, bodies = browser.portal_call(twenty_then_cancel)
    assert shared == 20
    assert all(b == bodies[0] for b in bodies) and "event: end" in bodies[0] and '"cancelled"' in bodies[0]
