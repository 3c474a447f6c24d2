"""app/ui/headers.py: every response carries the Content-Security-Policy, nosniff and the
Referrer-Policy (JSON, refusals, static files, the docs pages, event streams); only /redoc
gets a relaxed policy (inline styles, a blob: worker); streamed bodies pass through as they are sent.
/docs and /redoc are served from the vendored files (tests/browser/ renders them)."""
import anyio
import pytest

from app.ui.headers import CSP, REDOC_CSP, SecurityHeaders
from tests.api.routes import ended_job
from tests.e2e.helpers import blobs, upload_npz

STRICT = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "same-origin"}


def assert_strict(response) -> None:
    assert {name: response.headers.get(name) for name in STRICT} == STRICT, response.url


def test_json_routes_and_refusals_carry_the_strict_headers(api, anon):
    assert_strict(api.get("/healthz"))
    assert_strict(api.get("/v1/jobs"))
    assert_strict(api.get("/openapi.json"))
    refused = anon.get("/v1/jobs")
    assert refused.status_code == 401
    assert_strict(refused)
    # Refused by RequestLimits, before any route: the headers middleware is outside it.
    too_big = api.post("/v1/jobs", content=b"{" * 10, headers={"Content-Length": str(10**9),
                                                                  "Content-Type": "application/json"})
    assert too_big.status_code == 413
    assert_strict(too_big)
    assert_strict(anon.get("/v1/nothing-here"))


def directives(policy: str) -> dict[str, str]:
    return dict(d.strip().split(" ", 1) for d in policy.split(";"))


def test_the_strict_policy_forbids_inline_code_and_other_origins():
    strict = directives(CSP)
    assert strict["script-src"] == "'self'" and strict["style-src"] == "'self'"
    assert strict["default-src"] == "'self'" and strict["object-src"] == "'none'"
    assert strict["frame-ancestors"] == "'none'"
    # Redoc's relaxation is styles and a blob: worker, nothing else: scripts stay 'self' only.
    relaxed = directives(REDOC_CSP)
    changed = {k: v for k, v in relaxed.items() if strict.get(k) != v}
    assert changed == {"style-src": "'self' 'unsafe-inline'", "worker-src": "'self' blob:"}


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_are_served_offline(anon, path):
    r = anon.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    if path == "/docs":
        assert_strict(r)
    else:
        assert r.headers["content-security-policy"] == REDOC_CSP
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "http" not in r.text.replace('lang="en"', "")  # no CDN, no absolute URL at all
    assert 'src="/ui/static/vendor/' in r.text
    assert "<script>" not in r.text  # every script is a file
    assert '"/openapi.json"' in r.text


def test_fastapis_own_docs_are_off_and_no_ui_route_is_in_the_contract(anon):
    assert anon.get("/docs/oauth2-redirect").status_code == 404
    paths = anon.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p in ("/docs", "/redoc") or p.startswith("/ui")]


@pytest.mark.parametrize("path, content_type", [
    ("vendor/swagger-ui-dist-5.35.0/swagger-ui-bundle.js", "javascript"),
    ("vendor/swagger-ui-dist-5.35.0/swagger-ui.css", "text/css"),
    ("vendor/redoc-2.5.4/redoc.standalone.js", "javascript"),
    ("vendor/uplot-1.6.32/uPlot.iife.min.js", "javascript"),
    ("vendor/uplot-1.6.32/uPlot.min.css", "text/css"),
    ("js/swagger-init.js", "javascript"),
])
def test_static_files_are_served_with_their_type(anon, path, content_type):
    r = anon.get(f"/ui/static/{path}")
    assert r.status_code == 200 and content_type in r.headers["content-type"]
    assert len(r.content) > 100
    assert_strict(r)


def test_static_files_outside_the_folder_are_not_served(anon):
    assert anon.get("/ui/static/../../main.py").status_code == 404
    assert anon.get("/ui/static/%2e%2e/static.py").status_code == 404


def test_an_event_stream_carries_the_headers_and_its_events(api):
    x, y = blobs(40)
    job = ended_job(api, upload_npz(api, x, y)["id"], epochs=1)
    r = api.get(f"/v1/jobs/{job['id']}/events")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert_strict(r)
    assert "event: end" in r.text


def test_a_streamed_body_passes_through_each_message_as_it_is_sent():
    """The second chunk is only produced once the first has reached the client: a middleware
    that held the body back (BaseHTTPMiddleware's stream, a buffer) would hang here."""
    delivered = anyio.Event()
    received = []

    async def streaming_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await delivered.wait()
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})

    async def send(message):
        received.append(message)
        if message.get("body") == b"data: 1\n\n":
            delivered.set()

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def main():
        with anyio.fail_after(5):
            await SecurityHeaders(streaming_app)({"type": "http", "path": "/v1/jobs/x/events"}, receive, send)

    anyio.run(main)
    start, *bodies = received
    assert dict(start["headers"])[b"content-security-policy"] == CSP.encode()
    assert [b["body"] for b in bodies] == [b"data: 1\n\n", b"data: 2\n\n"]


def test_a_responses_own_policy_is_kept():
    async def app_with_policy(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-security-policy", b"default-src 'none'")]})
        await send({"type": "http.response.body", "body": b""})

    received = []

    async def send(message):
        received.append(message)

    anyio.run(lambda: SecurityHeaders(app_with_policy)({"type": "http", "path": "/"}, None, send))
    headers = received[0]["headers"]
    assert [v for k, v in headers if k == b"content-security-policy"] == [b"default-src 'none'"]
    assert (b"x-content-type-options", b"nosniff") in headers


def test_the_favicon_is_served(anon):
    # Browsers ask for /favicon.ico on any page that names no icon: a 404 is a console error.
    r = anon.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert r.content.startswith(b"<svg")
