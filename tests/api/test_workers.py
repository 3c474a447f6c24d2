"""GET /v1/workers without any worker: an empty registry, and its refusals."""
import pytest

from tests.e2e.helpers import errors_for


@pytest.mark.services
def test_no_worker_online_is_an_empty_list(api):
    for params in ({}, {"include_offline": "true"}):
        r = api.get("/v1/workers", params=params)
        assert r.status_code == 200, r.text
        assert r.json() == {"items": [], "online": {"gpu": 0, "cpu": 0}}


def test_a_bad_include_offline_is_422(api):
    r = api.get("/v1/workers", params={"include_offline": "maybe"})
    assert r.status_code == 422 and "valid boolean" in errors_for(r)["include_offline"]
