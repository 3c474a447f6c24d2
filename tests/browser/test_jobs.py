"""The jobs list (/): signing in lands on it, it shows the tenant's jobs newest first with
their status, filters by status, label and name, and the picked jobs go to /compare."""
import os
from urllib.parse import urlparse

from tests.browser.pages import alice, dataset, finished, sign_in, slow, stop, submit, until  # noqa: F401
from tests.e2e.helpers import mlp_spec


def test_sign_in_lands_on_the_jobs_list_showing_a_job(page, server_key, alice, dataset):  # noqa: F811
    first = submit(alice, dataset)
    second = submit(alice, dataset)
    finished(alice, first["id"]), finished(alice, second["id"])

    sign_in(page, server_key)
    assert urlparse(page.url).path == "/"
    rows = page.locator("#jobs-table tbody tr[data-job-id]")
    rows.first.wait_for()
    ids = rows.evaluate_all("rows => rows.map(r => r.dataset.jobId)")
    assert ids.index(second["id"]) < ids.index(first["id"])  # newest first
    row = page.locator(f"tr[data-job-id='{first['id']}']")
    assert row.locator(".status").inner_text() == "succeeded"
    assert row.locator("a", has_text=first["id"]).get_attribute("href") == f"/jobs/{first['id']}"

    # The status filter leaves only jobs of that status (other tests share the tenant); it is in the URL.
    page.select_option("#jobs-status", "failed")
    row.wait_for(state="detached")
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.status)")) <= {"failed"}
    assert "status=failed" in page.url
    page.select_option("#jobs-status", "")
    row.wait_for()

    # Two ticked jobs go to /compare together.
    page.check(f"input.pick[value='{first['id']}']")
    page.check(f"input.pick[value='{second['id']}']")
    page.click("#jobs-compare")
    page.wait_for_url("**/compare?jobs=*")
    assert set(page.url.split("jobs=")[1].split(",")) == {first["id"], second["id"]}


def test_a_running_rows_progress_moves_without_a_reload(page, server_key, alice, dataset):  # noqa: F811
    job = slow(alice, dataset)
    try:
        until(lambda: alice.get(f"/v1/jobs/{job['id']}").json()["progress"]["step"] > 0)
        sign_in(page, server_key)
        bar = page.locator(f"tr[data-job-id='{job['id']}'] progress")
        first = until(lambda: float(bar.get_attribute("value") or 0))
        until(lambda: float(bar.get_attribute("value")) > first, timeout=20)
        alice.post(f"/v1/jobs/{job['id']}/cancel")
        page.locator(f"tr[data-job-id='{job['id']}'] .status", has_text="cancelled").wait_for()
    finally:
        stop(alice, job["id"])


def test_the_label_and_name_filters_find_a_job_and_show_its_name(page, server_key, alice, dataset):  # noqa: F811
    tag = os.urandom(4).hex()  # the tenant is shared by this module's tests: filter on this run's label
    named = alice.post("/v1/jobs", json={**mlp_spec(dataset, epochs=1), "name": f"lr-sweep-{tag}",
                                         "labels": {"run": tag, "team": "vision"}}).json()
    other = alice.post("/v1/jobs", json={**mlp_spec(dataset, epochs=1), "labels": {"run": tag}}).json()
    finished(alice, named["id"]), finished(alice, other["id"])
    sign_in(page, server_key)
    rows = page.locator("#jobs-table tbody tr[data-job-id]")
    page.fill("#jobs-label", f"run:{tag}")
    page.press("#jobs-label", "Enter")
    until(lambda: set(rows.evaluate_all("rows => rows.map(r => r.dataset.jobId)")) == {named["id"], other["id"]})
    assert f"label=run%3A{tag}" in page.url
    page.fill("#jobs-name", f"lr-sweep-{tag}")
    page.press("#jobs-name", "Enter")
    until(lambda: rows.evaluate_all("rows => rows.map(r => r.dataset.jobId)") == [named["id"]])
    row = page.locator(f"tr[data-job-id='{named['id']}']")
    assert row.locator(".job-name").inner_text() == f"lr-sweep-{tag}"
    assert row.locator(".job-labels").inner_text() == f"run={tag} team=vision"
