"""What the dashboard's page tests share: signing a browser page in through the /signin form,
as a person does (the key in the form's POST body; the browser keeps only the session cookie)."""


def sign_in(page, key: str, path: str = "/") -> None:
    """Opens ``path`` signed in with ``key``: /signin?next=path, the form filled and sent."""
    page.goto(f"/signin?next={path}")
    page.locator("#api_key").fill(key)
    with page.expect_navigation():
        page.locator("form button[type=submit]").click()
    assert page.url.split("?")[0].endswith(path), page.url


def forgive_refusals(page_record, status: int, path: str) -> None:
    """Drops from the page's console errors Chromium's "Failed to load resource" line for each
    ``status`` answer on ``path``: a refusal the test asked for (a dry run's 422) is the answer
    under test, not a fault. Call it at the end of the test; any other error still fails it."""
    line = f"the server responded with a status of {status} "
    page_record.errors[:] = [e for e in page_record.errors
                             if not (e.startswith("console error: Failed to load resource:") and line in e
                                     and f"{path}" in e)]
