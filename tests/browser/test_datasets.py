"""/datasets lists the tenant's uploads and the builtin catalogue; every name and class name is
user-supplied, so the page must show it as text: a dataset named like an <img> tag renders as
those characters, and no element is made from it (the page fixture would also fail on the
alert's script error)."""
import pytest

from tests.browser.pages import sign_in


@pytest.fixture
def api(server, server_key):
    """The API of the browser tests' server, with the key the page signs in with."""
    with server.client(server_key) as client:
        yield client

XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_CLASSES = ["<b>bold</b>", "<script>alert(2)</script>", "plain"]


def upload_hostile_dataset(api) -> dict:
    rows = "\n".join(f"{i % 3 * 1.0},{(i * 7) % 5 * 1.0},{XSS_CLASSES[i % 3]}" for i in range(12))
    r = api.post("/v1/datasets", files={"file": ("hostile.csv", f"a,b,label\n{rows}\n".encode())},
                 data={"target": "label", "name": XSS_NAME})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == XSS_NAME
    return r.json()


def test_dataset_names_and_classes_render_as_text(page, api, server_key):
    dataset = upload_hostile_dataset(api)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, server_key, "/datasets")

    row = page.locator(f"#datasets-uploaded tr[data-id='{dataset['id']}']")
    row.wait_for()
    assert row.locator(".name").inner_text() == XSS_NAME
    classes = row.locator("td.classes").inner_text()
    for name in sorted(dataset["classes"]):
        assert name in classes
    assert "<script>alert(2)</script>" in classes
    # Nothing the names spelled became an element anywhere on the page.
    assert page.locator("main img, main script, main b").count() == 0
    assert dialogs == []
    assert row.locator("td").nth(1).inner_text() == "12"
    assert row.locator("td").nth(2).inner_text() == "2"


def test_builtin_datasets_are_listed_with_their_shapes(page, server_key):
    sign_in(page, server_key, "/datasets")
    digits = page.locator("#datasets-builtin tr[data-name='digits']")
    digits.wait_for()
    cells = digits.locator("td")
    assert cells.nth(1).inner_text() == "classification"
    assert cells.nth(2).inner_text() == "1,797"
    assert cells.nth(3).inner_text() == "1 × 8 × 8"
    assert cells.nth(5).inner_text() == "10 classes"
    assert page.locator("#datasets-builtin tr[data-name='sine_sequence']").count() == 1
