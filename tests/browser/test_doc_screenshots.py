"""Makes the README's pictures of the dashboard from a realistic run: three optimizers on the
digits, 10 epochs, two seeds each, as a study; docs/dashboard/study.png is its page and
docs/dashboard/compare.png its seed-1 members on /compare. A minute or so of training, so it
runs only when asked: TRAINYARD_DOC_SCREENSHOTS=1 pytest tests/browser/test_doc_screenshots.py"""
import os
from pathlib import Path

import pytest

from tests.browser.pages import alice, sign_in, until  # noqa: F401

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dashboard"

pytestmark = pytest.mark.skipif(not os.environ.get("TRAINYARD_DOC_SCREENSHOTS"),
                                reason="set TRAINYARD_DOC_SCREENSHOTS=1 to remake docs/dashboard/*.png")

BASE = {
    "dataset": "digits", "data": {"standardize": True},
    "model": {"layers": [{"type": "flatten"}, {"type": "linear", "out_features": 64}, {"type": "relu"},
                         {"type": "linear", "out_features": 10}]},
    "loss": {"type": "cross_entropy"}, "optimizer": {"type": "sgd", "lr": 0.02},
    "training": {"epochs": 10, "batch_size": 64, "validation_split": 0.2},
}


def test_make_the_dashboard_screenshots(page, server_key, alice):  # noqa: F811
    r = alice.post("/v1/studies", json={
        "name": "optimizers on digits", "base": BASE, "seeds": [1, 2],
        "variants": [{"label": "sgd", "set": {}},
                     {"label": "adam", "set": {"optimizer": {"type": "adam", "lr": 0.001}}},
                     {"label": "rmsprop", "set": {"optimizer": {"type": "rmsprop", "lr": 0.001}}}]})
    assert r.status_code == 201, r.text
    study = r.json()
    until(lambda: alice.get(f"/v1/studies/{study['id']}").json()["status"] == "completed", timeout=600, every=1)
    DOCS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 1100})

    sign_in(page, server_key, f"/studies/{study['id']}")
    page.locator("#study-status", has_text="completed").wait_for()
    until(lambda: page.locator("#study-chart").get_attribute("data-series") == "9")
    page.screenshot(path=DOCS / "study.png", full_page=True)

    seed_one = [m["job_id"] for m in study["members"] if m["seed"] == 1]
    page.goto(f"/compare?jobs={','.join(seed_one)}")
    until(lambda: page.locator("#compare-chart").get_attribute("data-points") == "30")
    page.locator("#compare-smoothing").fill("0.3")
    page.evaluate("document.activeElement.blur()")
    page.set_viewport_size({"width": 1280, "height": 680})
    page.screenshot(path=DOCS / "compare.png")
