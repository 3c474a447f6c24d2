"""The study page: the leaderboard and the variants' curves with their seed bands; labels
are shown as text."""
from tests.browser.pages import XSS, alice, dataset, sign_in, until  # noqa: F401
from tests.e2e.helpers import mlp_spec


def test_the_study_page_shows_its_leaderboard_and_labels_as_text(page, server_key, alice, dataset):  # noqa: F811
    r = alice.post("/v1/studies", json={
        "name": "lr study", "base": mlp_spec(dataset, epochs=40),  # runs long enough to be watched
        "variants": [{"label": "slow", "set": {"optimizer.lr": 0.01}},
                     {"label": XSS, "set": {"optimizer.lr": 0.1}}]})
    assert r.status_code == 201, r.text
    study = r.json()

    # Opened while it runs: the page follows the study to its end without a reload.
    sign_in(page, server_key, f"/studies/{study['id']}")
    page.locator("#study-status", has_text="running").wait_for()
    page.locator("#study-status", has_text="completed").wait_for(timeout=120_000)
    until(lambda: page.locator("#leaderboard .status", has_text="winner").count() == 1)
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 2
    board = alice.get(f"/v1/studies/{study['id']}").json()["leaderboard"]
    assert page.locator("#study-summary").inner_text() == board["summary"]
    winner = page.locator("#leaderboard tr.winner td").nth(1).inner_text()
    assert winner.startswith(board["winner"])
    until(lambda: page.locator("#study-chart").get_attribute("data-series") == "6")  # mean, max, min each
    legend = page.locator("#study-chart .u-legend tr:visible .u-label").all_inner_texts()
    assert legend[1:] == ["slow", XSS]  # the band edges are unnamed
    assert XSS in page.locator("#leaderboard").inner_text()
    assert page.locator("img").count() == 0
    # The two members differ only in their rate: they trained as one pack (docs/studies.md).
    assert page.locator("#study-members td.packed").all_inner_texts() == ["with 2", "with 2"]

    # The member's label is text on its job page and in the jobs list too.
    member = next(m for m in study["members"] if m["variant"] == XSS)
    page.goto(f"/jobs/{member['job_id']}")
    page.locator("#job-status").wait_for()
    assert XSS in page.locator(".job-head").inner_text()
    page.goto(f"/?study_id={study['id']}")
    page.locator(f"tr[data-job-id='{member['job_id']}']").wait_for()
    assert page.locator("img").count() == 0
