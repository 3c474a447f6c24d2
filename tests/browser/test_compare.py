"""/compare overlays jobs' curves; the log toggle and the smoothing slider change the drawing."""
from tests.browser.pages import alice, dataset, finished, sign_in, slow, stop, submit, until  # noqa: F401


def canvas(page) -> str:
    return page.locator("#compare-chart canvas").evaluate("c => c.toDataURL()")


def test_two_jobs_are_overlaid_and_the_toggles_redraw(page, server_key, alice, dataset):  # noqa: F811
    a = finished(alice, submit(alice, dataset, epochs=12)["id"])
    b = finished(alice, submit(alice, dataset, epochs=12, seed=9)["id"])
    sign_in(page, server_key, f"/compare?jobs={a['id']},{b['id']}")
    chart = page.locator("#compare-chart")
    until(lambda: chart.get_attribute("data-points") == "24")
    assert chart.get_attribute("data-series") == "2"
    legend = page.locator("#compare-chart .u-legend").inner_text()
    assert a["id"][:12] in legend and b["id"][:12] in legend

    plain = canvas(page)
    page.check("#compare-log")
    until(lambda: chart.get_attribute("data-log") == "1")
    logged = canvas(page)
    assert logged != plain
    page.uncheck("#compare-log")
    page.locator("#compare-smoothing").fill("0.9")
    until(lambda: chart.get_attribute("data-smoothing") == "0.9")
    assert canvas(page) not in (plain, logged)

    with page.expect_download() as got:
        page.click("#compare-csv")
    rows = open(got.value.path()).read().splitlines()
    assert rows[0] == "job,label,epoch,val_loss" and len(rows) == 1 + 24

    # x as training seconds: the same points on a time axis, in the CSV too.
    page.select_option("#compare-x", "seconds")
    with page.expect_download() as got:
        page.click("#compare-csv")
    rows = open(got.value.path()).read().splitlines()
    assert rows[0] == "job,label,seconds,val_loss" and len(rows) == 1 + 24
    seconds = [float(r.split(",")[2]) for r in rows[1:13]]
    assert seconds == sorted(seconds) and seconds[0] > 0  # cumulative epoch_seconds
    assert chart.get_attribute("data-points") == "24"
    with page.expect_download() as got:
        page.click("#compare-png")
    assert got.value.suggested_filename == "compare-val_loss.png"
    assert open(got.value.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_without_jobs_it_lists_recent_jobs_to_pick(page, server_key, alice, dataset):  # noqa: F811
    job = finished(alice, submit(alice, dataset, epochs=2)["id"])
    sign_in(page, server_key, "/compare")
    page.check(f"#compare-root input[value='{job['id']}']")
    page.click("#compare-go")
    page.wait_for_url(f"**/compare?jobs={job['id']}")
    until(lambda: page.locator("#compare-chart").get_attribute("data-points") == "2")


def test_a_running_job_keeps_drawing_on_compare(page, server_key, alice, dataset):  # noqa: F811
    job = slow(alice, dataset)
    try:
        sign_in(page, server_key, f"/compare?jobs={job['id']}")
        chart = page.locator("#compare-chart")
        first = until(lambda: int(chart.get_attribute("data-points") or 0) > 0 and
                      int(chart.get_attribute("data-points")))
        until(lambda: int(chart.get_attribute("data-points")) > first + 2, timeout=60)  # no reload
    finally:
        stop(alice, job["id"])
