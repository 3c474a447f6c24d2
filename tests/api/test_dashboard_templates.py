"""The submit page's ready specs (app/ui/static/templates.json) are valid jobs: each dry-runs
to a plan with no warnings and the shapes its title promises, and the file is served where
the page fetches it."""
import json
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).parents[2] / "app" / "ui" / "static" / "templates.json"
ENTRIES = json.loads(TEMPLATES.read_text())["templates"]


def test_the_templates_are_the_three_the_page_offers():
    assert [t["id"] for t in ENTRIES] == ["mlp-digits", "cnn-digits", "lstm-sine"]
    assert len({t["title"] for t in ENTRIES}) == len(ENTRIES)


@pytest.mark.parametrize("template", ENTRIES, ids=[t["id"] for t in ENTRIES])
def test_each_template_dry_runs_valid(api, template):
    r = api.post("/v1/jobs", params={"dry_run": "true"}, json=template["spec"])
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["valid"] is True
    assert plan["warnings"] == []
    assert plan["parameter_count"] > 0 and plan["total_steps"] > 0
    assert plan["layers"][0]["path"] == "model.layers[0]"


def test_the_mlp_is_64_128_10(api):
    mlp = next(t for t in ENTRIES if t["id"] == "mlp-digits")
    plan = api.post("/v1/jobs", params={"dry_run": "true"}, json=mlp["spec"]).json()
    linears = [layer for layer in plan["layers"] if layer["type"] == "linear"]
    assert [(layer["input_shape"][-1], layer["output_shape"][-1]) for layer in linears] == [(64, 128), (128, 10)]
    assert plan["parameter_count"] == 64 * 128 + 128 + 128 * 10 + 10


def test_the_templates_file_is_served_to_the_page(anon):
    r = anon.get("/ui/static/templates.json")
    assert r.status_code == 200
    assert r.json()["templates"] == ENTRIES
