"""What the dashboard's browser tests share: signing a page in through the form, a small
dataset, jobs to show, waiting for the API to report something, and forgiving a refusal the
test asked for."""
import time
from urllib.parse import quote, urlparse

import httpx
import pytest

from tests.e2e.helpers import blobs, mlp_spec, upload_npz

XSS = "<img src=x onerror=alert(1)>"


def sign_in(page, key: str, next_path: str = "/") -> None:
    """Signs the page in through /signin, as a person does, and waits for ``next_path`` to load."""
    page.goto(f"/signin?next={quote(next_path, safe='')}")
    page.fill("#api_key", key)
    with page.expect_navigation():
        page.click("form button[type=submit]")
    page.wait_for_load_state("load")
    assert urlparse(page.url).path == urlparse(next_path).path, page.url


def forgive_refusals(page_record, status: int, path: str) -> None:
    """Drops from the page's console errors Chromium's "Failed to load resource" line for each
    ``status`` answer on ``path``: a refusal the test asked for (a dry run's 422) is the answer
    under test, not a fault. Call it at the end of the test; any other error still fails it."""
    line = f"the server responded with a status of {status} "
    page_record.errors[:] = [e for e in page_record.errors
                             if not (e.startswith("console error: Failed to load resource:") and line in e
                                     and path in e)]


def until(check, timeout: float = 60, every: float = 0.2):
    """check()'s first truthy answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def finished(api: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    return until(lambda: (j := api.get(f"/v1/jobs/{job_id}").json())["status"] in
                 ("succeeded", "failed", "cancelled") and j, timeout)


def submit(api: httpx.Client, dataset: str, **training) -> dict:
    r = api.post("/v1/jobs", json=mlp_spec(dataset, **training))
    assert r.status_code == 202, r.text
    return r.json()


def slow(api: httpx.Client, dataset: str) -> dict:
    """A job that runs for many seconds: 500 epochs of one-row batches (45,000 steps, each logged),
    about 10 s on an idle 2-core machine, so a test can still watch and cancel it (4-row batches
    finished in 3 s there, before the test's cancel)."""
    return submit(api, dataset, epochs=500, batch_size=1, log_every_steps=1)


def stop(api: httpx.Client, job_id: str) -> None:
    """Cancels a job if it still runs: the stack has one worker, the next test needs it."""
    if api.get(f"/v1/jobs/{job_id}").json()["status"] in ("queued", "running", "retrying"):
        api.post(f"/v1/jobs/{job_id}/cancel")
    finished(api, job_id)


@pytest.fixture(scope="module")
def alice(server, server_key):
    """The API as the browser tests' tenant (the harness's server and key)."""
    with server.client(server_key) as c:
        yield c


@pytest.fixture(scope="module")
def dataset(alice) -> str:
    x, y = blobs(120)
    return upload_npz(alice, x, y)["id"]
