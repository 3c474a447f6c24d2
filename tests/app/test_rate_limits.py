"""RATE_LIMIT in a deployment of its own (here, outside tests/api, whose package-wide deployment
would share the process's settings) (3 calls a minute per key, in memory): the 429's body and
Retry-After, per key, health and /metrics exempt, and a refused POST stores nothing."""
import pytest

from tests.api.inprocess import deployment as start_deployment
from tests.api.inprocess import environment
from tests.conftest import TEST_LIMITS
from tests.e2e.helpers import mlp_spec


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rate-limited")
    with start_deployment("sqlite", tmp, environment(tmp, "", {**TEST_LIMITS, "RATE_LIMIT": "3/minute"})) as running:
        yield running


def test_over_the_rate_a_key_gets_429_with_retry_after_and_nothing_is_stored(limited):
    key, other = limited.new_key(), limited.new_key()
    with limited.client(key) as api, limited.client(other) as theirs:
        assert api.post("/v1/jobs", json=mlp_spec("iris")).status_code == 202
        assert [api.get("/v1/jobs").status_code for _ in range(2)] == [200, 200]
        r = api.post("/v1/jobs", json=mlp_spec("iris"))
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert r.json()["detail"].startswith("over the rate limit of 3/minute per API key (RATE_LIMIT); retry after ")
        assert r.json()["errors"][0]["field"] == "Authorization"
        assert r.headers["X-Content-Type-Options"] == "nosniff"  # SecurityHeaders is outside it
        assert api.get("/healthz").status_code == 200 and api.get("/metrics").status_code == 200
        # Another key has its own count, and sees that the refused POST stored no job.
        assert theirs.get("/v1/jobs").json()["total"] == 0
    with limited.client(key) as again:
        assert again.get("/v1/jobs").status_code == 429  # a new connection, the same key

