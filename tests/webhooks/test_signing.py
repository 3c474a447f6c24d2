"""Our signatures are the Standard Webhooks scheme: the spec's test vector, and the spec's own
library (standardwebhooks) verifies what we sign and refuses what was tampered with."""
import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.webhooks import signing

# The Standard Webhooks specification's example (its libraries' tests use the same).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_spec_example_signs_to_the_spec_signature():
    assert signing.sign(secret=SPEC_SECRET, msg_id=SPEC_ID, timestamp=SPEC_TIMESTAMP, body=SPEC_BODY) == SPEC_SIGNATURE


def test_the_reference_library_verifies_our_headers_and_refuses_a_changed_body():
    secret = signing.generate_secret()
    body = b'{"type":"job.succeeded","data":{"id":"job_1"}}'
    headers = signing.headers(secret=secret, msg_id="msg_1", timestamp=int(time.time()), body=body)
    assert Webhook(secret).verify(body, headers) == {"type": "job.succeeded", "data": {"id": "job_1"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"job_1", b"job_2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.generate_secret()).verify(body, headers)


def test_a_generated_secret_is_whsec_and_32_random_bytes():
    first, second = signing.generate_secret(), signing.generate_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


@pytest.mark.parametrize("secret, why", [
    ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must be 'whsec_'"),
    ("whsec_not base64!", "not valid base64"),
    ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes, got 5"),
    ("whsec_" + base64.b64encode(b"x" * 65).decode(), "got 65"),
])
def test_a_secret_that_is_not_one_is_refused_saying_why(secret, why):
    with pytest.raises(ValueError, match=why):
        signing.secret_bytes(secret)


def test_an_unpadded_secret_is_the_same_key_as_the_padded_one():
    padded = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert padded.endswith("=") and signing.secret_bytes(padded.rstrip("=")) == b"k" * 32


def test_the_docs_ten_line_verifier_accepts_our_deliveries_and_refuses_tampered_or_stale_ones():
    import re

    from tests.stack import ROOT

    page = (ROOT / "docs" / "webhooks.md").read_text()
    (snippet,) = re.findall(r"^## Verify a signature\n\n```python\n(.*?)^```$", page, re.M | re.S)
    assert len(snippet.strip().splitlines()) <= 11  # the promise is "ten lines" (and a docstring)
    scope: dict = {}
    exec(snippet, scope)
    verify, secret, body = scope["verify"], signing.generate_secret(), b'{"type":"job.failed"}'
    now = int(time.time())
    headers = signing.headers(secret=secret, msg_id="msg_1", timestamp=now, body=body)
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")
    assert not verify(signing.generate_secret(), headers, body)
    stale = signing.headers(secret=secret, msg_id="msg_1", timestamp=now - 600, body=body)
    assert not verify(secret, stale, body)
