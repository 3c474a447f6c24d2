"""The job page: live curves without a reload, the plan, downloads, and cancel."""
from tests.browser.pages import alice, dataset, finished, sign_in, slow, stop, submit, until  # noqa: F401


def points(page, chart: str) -> int:
    return int(page.locator(f"#{chart}").get_attribute("data-points") or 0)


def test_a_running_jobs_chart_gains_points_without_a_reload(page, server_key, alice, dataset):  # noqa: F811
    job = slow(alice, dataset)
    try:
        until(lambda: alice.get(f"/v1/jobs/{job['id']}").json()["progress"]["step"] > 0)
        sign_in(page, server_key, f"/jobs/{job['id']}")
        page.locator("#job-status", has_text="running").wait_for()
        before = until(lambda: points(page, "chart-loss"))
        navigations = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))
        until(lambda: points(page, "chart-loss") > before + 10, timeout=30)
        assert navigations == []  # the points came over the stream, not by reloading
        assert page.locator("#job-plan table tbody tr").count() == 3  # linear, relu, linear
        assert "null" not in page.locator(".job-head").inner_text() + page.locator(".job-progress").inner_text()
    finally:
        stop(alice, job["id"])


def test_the_cancel_button_cancels_a_running_job(page, server_key, alice, dataset):  # noqa: F811
    job = slow(alice, dataset)
    try:
        until(lambda: alice.get(f"/v1/jobs/{job['id']}").json()["status"] == "running")
        sign_in(page, server_key, f"/jobs/{job['id']}")
        page.click("#job-cancel")
        assert finished(alice, job["id"], timeout=30)["status"] == "cancelled"
        page.locator("#job-status", has_text="cancelled").wait_for()  # the page follows without a reload
        assert page.locator("#job-cancel").count() == 0
    finally:
        stop(alice, job["id"])


def test_a_finished_job_shows_its_curves_and_download_links(page, server_key, alice, dataset):  # noqa: F811
    job = finished(alice, submit(alice, dataset, epochs=4)["id"])
    sign_in(page, server_key, f"/jobs/{job['id']}")
    page.locator("#job-status", has_text="succeeded").wait_for()
    until(lambda: points(page, "chart-accuracy") == 4)
    assert int(page.locator("#chart-grad").get_attribute("data-series")) == 2  # the two linear layers
    link = page.locator("a", has_text="Weights")
    assert link.get_attribute("href") == f"/v1/jobs/{job['id']}/weights"
    with page.expect_download() as got:
        link.click()
    assert got.value.suggested_filename == f"{job['id']}.safetensors"
    assert page.locator("#job-cancel").count() == 0


def test_ten_thousand_epochs_draw_in_under_a_second(page, server_key, alice, dataset):  # noqa: F811
    """The chart itself, fed a 10,000-epoch history of four series (GET /metrics?max_points cuts a
    real one to 2,000 before it gets here, so this is the page's worst case)."""
    job = finished(alice, submit(alice, dataset, epochs=1)["id"])
    sign_in(page, server_key, f"/jobs/{job['id']}")
    page.locator("#job-status", has_text="succeeded").wait_for()
    seconds = page.evaluate("""() => {
        const box = document.createElement("div");
        document.querySelector("#job-root").append(box);
        const x = Array.from({length: 10000}, (_, i) => i + 1);
        const series = ["train", "val", "acc", "lr"].map((label, k) =>
            ({label, x, y: x.map(e => Math.exp(-e / 3000) + k + 0.01 * Math.sin(e))}));
        const start = performance.now();
        TrainyardChart.create(box, {title: "long", xLabel: "epoch"}).update(series, {now: true});
        return [(performance.now() - start) / 1000, Number(box.dataset.points)];
    }""")
    assert seconds[1] == 40_000
    assert seconds[0] < 1.0, seconds


def test_a_vanishing_gradient_draws_on_the_log_chart(page, server_key, alice, dataset):  # noqa: F811
    """uPlot's log axis throws past about 25 decades; a layer's gradient norm of 1e-30 beside 1 is
    what a vanishing gradient looks like, so the chart floors such values instead (the page
    fixture fails the test on the exception)."""
    job = finished(alice, submit(alice, dataset, epochs=1)["id"])
    sign_in(page, server_key, f"/jobs/{job['id']}")
    page.locator("#job-status", has_text="succeeded").wait_for()
    drawn = page.evaluate("""() => {
        const box = document.createElement("div");
        document.querySelector("#job-root").append(box);
        const series = [{label: "layers[0]", x: [1, 2, 3], y: [1e-30, 1e-35, 0]},
                        {label: "layers[2]", x: [1, 2, 3], y: [1, 0.5, 2]}];
        TrainyardChart.create(box, {xLabel: "epoch", logY: true}).update(series, {now: true});
        return Number(box.dataset.points);
    }""")
    assert drawn == 5  # the zero is left out; the tiny ones are drawn at the floor
