"""/docs (Swagger UI) and /redoc (Redoc) render the API's operations from the vendored
bundles alone: nothing is fetched from another origin, nothing logs an error (the page
fixture checks both for every test), and "Try it out" sends the Bearer key."""
import re


def test_swagger_ui_lists_the_operations(page, page_record, server):
    page.goto("/docs")
    post_jobs = page.locator(".opblock-post", has=page.locator(".opblock-summary-path[data-path='/v1/jobs']"))
    post_jobs.first.wait_for()
    assert page.locator(".opblock-tag").filter(has_text="jobs").count() >= 1
    assert page.locator(".opblock").count() >= 20  # every operation, not a stub
    assert page.locator(".info .title").inner_text().startswith("Trainyard")
    assert f"{server.url}/openapi.json" in page_record.requests
    assert any("/ui/static/vendor/swagger-ui-dist-" in url for url in page_record.requests)


def test_swagger_ui_try_it_out_sends_the_bearer_key(page, server_key):
    page.goto("/docs")
    page.locator("button.authorize").click()
    page.locator(".auth-container input").fill(server_key)
    page.locator(".auth-btn-wrapper button.authorize").click()
    page.locator("button.btn-done").click()

    operation = page.locator(".opblock-get", has=page.locator(".opblock-summary-path[data-path='/v1/jobs']")).first
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    with page.expect_response(re.compile(r"/v1/jobs(\?|$)")) as answered:
        operation.locator("button.execute").click()
    assert answered.value.request.headers["authorization"] == f"Bearer {server_key}"
    assert answered.value.status == 200
    shown = operation.locator(".live-responses-table tbody .response-col_status").first
    assert shown.inner_text().strip() == "200"


def test_redoc_renders_the_operations(page, page_record, server):
    page.goto("/redoc")
    page.get_by_role("heading", name=re.compile(r"^Trainyard")).first.wait_for()
    page.locator("[data-section-id^='tag/jobs']").first.wait_for()
    assert page.get_by_text("/v1/jobs", exact=False).count() >= 1
    assert f"{server.url}/openapi.json" in page_record.requests


def test_redoc_search_finds_an_operation(page):
    """Redoc searches in a Web Worker started from a blob: URL: the one thing /redoc's
    worker-src relaxation (app/ui/headers.py) is for."""
    page.goto("/redoc")
    search = page.locator("input[placeholder='Search...']")
    search.fill("weights")
    result = page.locator("[data-role='search:results'] li").first
    result.wait_for()
    assert "weights" in result.inner_text().lower()
