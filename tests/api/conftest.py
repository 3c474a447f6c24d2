"""Fixtures of the in-process layer: one deployment per database for this package's tests
(SQLite always; PostgreSQL too for tests marked ``services``), a new tenant for each test.
Package-scoped, so the environment and caches are put back before any other directory's
tests run.

A tenant of its own per test keeps tests apart on a shared database: whatever one test
stores, another's lists and counts never see.
"""
import pytest

from tests.api.inprocess import Client, Deployment, deployment as start_deployment, environment
from tests.conftest import TEST_LIMITS, fresh_postgres_database


def pytest_generate_tests(metafunc):
    """Every test runs on SQLite; one marked ``services`` on PostgreSQL as well."""
    if "database" in metafunc.fixturenames:
        names = ["sqlite"]
        if metafunc.definition.get_closest_marker("services"):
            names.append("postgresql")
        metafunc.parametrize("database", names, indirect=True, scope="package")


@pytest.fixture(scope="package")
def database(request) -> str:
    return request.param


@pytest.fixture(scope="package")
def deployment(database, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"api-{database}")
    if database == "sqlite":
        with start_deployment(database, tmp, environment(tmp, "", TEST_LIMITS)) as running:
            yield running
        return
    with fresh_postgres_database() as url:
        with start_deployment(database, tmp, environment(tmp, url, TEST_LIMITS)) as running:
            yield running


@pytest.fixture
def api(deployment: Deployment) -> Client:
    """A client with the key of a tenant of this test's own."""
    with deployment.client(deployment.new_key()) as client:
        yield client


@pytest.fixture
def other_api(deployment: Deployment) -> Client:
    """Another tenant's client."""
    with deployment.client(deployment.new_key()) as client:
        yield client


@pytest.fixture
def anon(deployment: Deployment) -> Client:
    """A client that sends no Authorization header."""
    with deployment.client(None) as client:
        yield client
