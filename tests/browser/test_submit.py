"""/submit: a template's spec dry-runs as it is loaded and shows its plan; an edit that breaks
it shows the field's error in place, without a reload; fixing it brings the plan back; invalid
JSON is placed at its line and column; Submit queues the job and lands on its page."""
import json

import pytest

from tests.browser.pages import forgive_refusals, sign_in


@pytest.fixture
def api(server, server_key):
    """The API of the browser tests' server, with the key the page signs in with."""
    with server.client(server_key) as client:
        yield client


def editor_spec(page) -> dict:
    return json.loads(page.locator("#submit-spec").input_value())


def set_spec(page, spec) -> None:
    # fill() fires the input event, as typing does: the page's debounced dry run follows.
    page.locator("#submit-spec").fill(spec if isinstance(spec, str) else json.dumps(spec, indent=2))


def plan_shown(page):
    page.locator("#submit-plan").wait_for(state="visible")
    assert page.locator("#submit-errors").is_hidden()
    return page.locator("#submit-layers tbody tr")


def errors_shown(page) -> list[str]:
    page.locator("#submit-errors").wait_for(state="visible")
    assert page.locator("#submit-plan").is_hidden()
    return page.locator("#submit-error-list li").all_inner_texts()


def test_a_template_shows_its_plan(page, server_key):
    sign_in(page, server_key, "/submit")
    layers = plan_shown(page)  # the first template is loaded and checked on arrival
    assert page.locator("#submit-template").input_value() == "mlp-digits"
    assert layers.count() == 4
    first = layers.nth(0).locator("td").all_inner_texts()
    assert first == ["model.layers[0]", "flatten", "(batch, 1, 8, 8)", "(batch, 64)", "0"]
    assert page.locator("dd[data-total='Parameters']").inner_text() == f"{64 * 128 + 128 + 128 * 10 + 10:,}"

    page.locator("#submit-template").select_option("lstm-sine")
    page.locator("#submit-layers tbody tr[data-path='model.layers[0]'] td:nth-child(2)").filter(
        has_text="lstm").wait_for()
    assert editor_spec(page)["dataset"]["name"] == "sine_sequence"
    for total in ("FLOPs per step", "Training memory", "Steps"):
        assert page.locator(f"dd[data-total='{total}']").inner_text().strip()


def test_a_bad_field_shows_its_error_and_fixing_it_brings_the_plan_back(page, page_record, server_key):
    sign_in(page, server_key, "/submit")
    plan_shown(page)
    page.evaluate("window.__same_page = true")  # gone if anything reloads the page
    spec = editor_spec(page)

    spec["optimizer"]["lr"] = -1
    set_spec(page, spec)
    errors = errors_shown(page)
    assert any(e.startswith("optimizer.lr: ") for e in errors), errors
    assert page.locator("#submit-error-list li[data-field='optimizer.lr'] code").inner_text() == "optimizer.lr"

    spec["optimizer"]["lr"] = 0.05
    set_spec(page, spec)
    assert plan_shown(page).count() == 4
    assert page.evaluate("window.__same_page") is True
    forgive_refusals(page_record, 422, "/v1/jobs?dry_run=true")


def test_invalid_json_is_placed_at_its_line_and_column(page, server_key):
    sign_in(page, server_key, "/submit")
    plan_shown(page)
    set_spec(page, '{\n  "dataset": "iris",\n  "model": nope\n}')
    errors = errors_shown(page)
    assert len(errors) == 1
    assert errors[0].startswith("JSON line 3, column 12: "), errors


def test_warnings_from_the_dry_run_are_shown(page, server_key):
    sign_in(page, server_key, "/submit")
    plan_shown(page)
    spec = editor_spec(page)
    spec["training"]["batch_size"] = 5000  # over the training rows: the dry run warns
    set_spec(page, spec)
    page.locator("#submit-warnings li").first.wait_for()
    assert page.locator("#submit-warnings li").count() >= 1


def test_submit_queues_the_job_and_lands_on_its_page(page, api, server_key):
    sign_in(page, server_key, "/submit")
    plan_shown(page)
    spec = editor_spec(page)
    spec["training"]["epochs"] = 1
    set_spec(page, spec)
    plan_shown(page)
    with page.expect_navigation(url="**/jobs/job_*") as landed:
        page.locator("#submit-button").click()
    assert landed.value.status == 200
    job_id = page.url.rsplit("/", 1)[1]
    job = api.get(f"/v1/jobs/{job_id}")
    assert job.status_code == 200
    assert job.json()["status"] in ("queued", "running", "succeeded")
