"""An https:// webhook is sent to the address its host resolved to and checked, yet its TLS handshake
names the host (SNI) and verifies the certificate against it: a real HTTPS receiver on 127.0.0.1 with a
certificate for hooks.test (from a throwaway CA, trustme). DNS is outside us: hooks.test resolves to
127.0.0.1 here. A certificate for another name is refused."""
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import trustme
from standardwebhooks.webhooks import Webhook as Verifier

from app.models.base import utcnow
from app.webhooks import signing
from app.webhooks.deliveries import Claimed
from app.webhooks.sender import post


@pytest.fixture
def ca():
    return trustme.CA()


@pytest.fixture
def https_receiver(ca, monkeypatch):
    """(port, requests, the server names the handshakes asked for) of an HTTPS server for hooks.test."""
    requests, names = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.test").configure_cert(context)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: (
        [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))] if host in ("hooks.test", "other.test")
        else real(host, port, *a, **k)))
    yield server.server_address[1], requests, names
    server.shutdown()
    server.server_close()


def claimed(url: str, secret: str) -> Claimed:
    return Claimed("msg_tls", "wh_tls", url, secret, {"type": "job.succeeded", "data": {}}, 1, utcnow())


def test_an_https_delivery_names_its_host_in_the_handshake_and_verifies_the_certificate(ca, https_receiver):
    port, requests, names = https_receiver
    secret = signing.generate_secret()
    with httpx.Client(verify=_trust(ca), timeout=10, follow_redirects=False, trust_env=False) as client:
        outcome = post(claimed(f"https://hooks.test:{port}/in", secret), client=client, allow_private=True)
        assert (outcome.status_code, outcome.error) == (204, None)
        assert names == ["hooks.test"]
        ((headers, body),) = requests
        assert headers["host"] == f"hooks.test:{port}"
        Verifier(secret).verify(body, headers)
        refused = post(claimed(f"https://other.test:{port}/in", secret), client=client, allow_private=True)
    assert refused.status_code is None and "CERTIFICATE_VERIFY_FAILED" in refused.error and len(requests) == 1


def _trust(ca) -> ssl.SSLContext:
    """The sender's client trusts the public CAs; this one trusts the test's CA instead."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context
