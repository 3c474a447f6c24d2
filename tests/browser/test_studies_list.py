"""/studies lists the tenant's studies with their status, member counts and winner, each
linking to its own page; a study created through the API shows up there."""
import time

import pytest

from tests.browser.pages import sign_in


@pytest.fixture
def api(server, server_key):
    """The API of the browser tests' server, with the key the page signs in with."""
    with server.client(server_key) as client:
        yield client

LABEL = "<i>adam</i>"  # variant labels are user-supplied too: text only


def small_study(api, name: str) -> dict:
    base = {"dataset": "iris",
            "model": {"layers": [{"type": "linear", "out_features": 8}, {"type": "relu"},
                                 {"type": "linear", "out_features": 3}]},
            "loss": {"type": "cross_entropy"}, "optimizer": {"type": "sgd", "lr": 0.1},
            "training": {"epochs": 2, "batch_size": 50, "validation_split": 0.2}}
    r = api.post("/v1/studies", json={"name": name, "base": base, "seeds": [1],
                                      "variants": [{"label": "sgd"},
                                                   {"label": LABEL, "set": {"optimizer.type": "adam",
                                                                            "optimizer.lr": 0.01}}],
                                      "objective": {"metric": "val_accuracy"}})
    assert r.status_code == 201, r.text
    return r.json()


def wait_ended(api, study_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study = api.get(f"/v1/studies/{study_id}").json()
        if study["status"] != "running":
            return study
        time.sleep(0.5)
    raise AssertionError(f"study {study_id} still running after {timeout} s")


def test_a_study_made_through_the_api_is_listed_and_links_to_its_page(page, api, server_key):
    study = small_study(api, "<b>lr sweep</b>")
    ended = wait_ended(api, study["id"])
    sign_in(page, server_key, "/studies")

    row = page.locator(f"#studies-list tr[data-id='{study['id']}']")
    row.wait_for()
    link = row.locator("a")
    assert link.inner_text() == "<b>lr sweep</b>"
    assert link.get_attribute("href") == f"/studies/{study['id']}"
    assert row.locator(".status").inner_text() == ended["status"] == "completed"
    assert row.locator("td.counts").inner_text().startswith("2/2")
    winner = ended["leaderboard"]["winner"]
    assert winner in ("sgd", LABEL)
    page.wait_for_function("id => document.querySelector(`tr[data-id='${id}'] td.winner`).textContent !== '…'",
                           arg=study["id"])
    assert row.locator("td.winner").inner_text() == winner
    assert page.locator("main b, main i").count() == 0

    with page.expect_navigation():
        link.click()
    assert page.url.endswith(f"/studies/{study['id']}")


def test_the_status_filter_narrows_the_list(page, api, server_key):
    study = small_study(api, "filtered")
    wait_ended(api, study["id"])
    sign_in(page, server_key, "/studies")
    page.locator(f"#studies-list tr[data-id='{study['id']}']").wait_for()
    page.locator("#studies-status").select_option("cancelled")
    page.locator(f"#studies-list tr[data-id='{study['id']}']").wait_for(state="detached")
    page.locator("#studies-status").select_option("completed")
    page.locator(f"#studies-list tr[data-id='{study['id']}']").wait_for()
