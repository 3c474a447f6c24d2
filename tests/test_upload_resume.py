"""Resumable uploads through a real API process (uvicorn): the CLI's connection cut mid-upload by a
proxy, and a second run that sends only the parts the server lacks (counted in the API's access
log); the progress bar; the Python client's upload in parts. Parts of 64 KiB, a file of ~1 MB."""
import hashlib
import os
import re
import subprocess
import sys

import pytest

from app.client import Client
from tests.conftest import TEST_LIMITS
from tests.e2e.helpers import blobs, csv_bytes
from tests.proxy import CutRequests
from tests.stack import ROOT, Stack

PART = 65536


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory):
    """The API alone (uploads need no worker), on the embedded deployment."""
    stack = Stack("uploads", tmp_path_factory.mktemp("uploads"),
                  {**TEST_LIMITS, "UPLOAD_PART_BYTES": str(PART), "MAX_UPLOAD_BYTES": "4000000"})
    try:
        yield stack.start(worker=False)
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def key(api_stack) -> str:
    return api_stack.new_key("uploader")


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    x, y = blobs(20_000, seed=3)
    path = tmp_path_factory.mktemp("files") / "pets.csv"
    path.write_bytes(csv_bytes(x, y))
    return path


def cli(url: str, key: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRAINYARD_URL": url, "TRAINYARD_API_KEY": key, "COLUMNS": "120",
           "TRAINYARD_CONFIG": str(tmp_path / "absent.toml"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def one_shot(stack: Stack, key: str, path) -> dict:
    with stack.client(key) as http:
        r = http.post("/v1/datasets", files={"file": (path.name, path.read_bytes())}, data={"target": "label"})
    assert r.status_code == 201, r.text
    return r.json()


def parts_put(log: str, upload_id: str) -> list[int]:
    """The part numbers the API answered 200 to, in its access log's order."""
    return [int(n) for n in re.findall(rf'"PUT /v1/uploads/{upload_id}/parts/(\d+) HTTP/1.1" 200', log)]


def test_a_second_run_sends_only_the_parts_the_first_did_not(api_stack, key, big_csv, tmp_path):
    count = -(-big_csv.stat().st_size // PART)
    assert count >= 12
    proxy = CutRequests(api_stack.port, after_bytes=int(5.5 * PART))  # mid-way through part 6
    try:
        first = cli(proxy.url, key, tmp_path, "datasets", "upload", str(big_csv), "--target", "label",
                    "--resumable", "--retries", "2")
        assert first.returncode == 1, first.stdout + first.stderr
        said = " ".join(first.stderr.split())  # as one line, however the terminal wrapped it
        upload_id = re.search(r"upload (up_\w+) stopped \(part 6 of \d+ not sent\)", said).group(1)
        assert "run the same upload again to resume" in said
        with api_stack.client(key) as http:
            status = http.get(f"/v1/uploads/{upload_id}").json()
        assert [p["n"] for p in status["parts"]] == [1, 2, 3, 4, 5]

        mark = len(api_stack.api_log())
        proxy.heal()
        second = cli(proxy.url, key, tmp_path, "datasets", "upload", str(big_csv), "--target", "label",
                     "--resumable")
    finally:
        proxy.close()
    assert second.returncode == 0, second.stdout + second.stderr
    log = api_stack.api_log()[mark:]
    assert parts_put(log, upload_id) == list(range(6, count + 1)), log
    assert f"GET /v1/uploads/{upload_id} " in log and "POST /v1/uploads HTTP" not in log
    dataset_id = re.search(r"dataset (ds_\w+)", second.stdout).group(1)
    with api_stack.client(key) as http:
        ds = http.get(f"/v1/datasets/{dataset_id}").json()
    expected = one_shot(api_stack, key, big_csv)
    assert (ds["sha256"], ds["rows"]) == (expected["sha256"], expected["rows"]) == (expected["sha256"], 20_000)
    assert list((tmp_path / "cache" / "trainyard" / "uploads").iterdir()) == []  # its state file is gone


def test_the_cli_shows_a_progress_bar_and_the_dataset_appears(api_stack, key, big_csv, tmp_path):
    run = cli(api_stack.url, key, tmp_path, "datasets", "upload", str(big_csv), "--target", "label",
              "--resumable", "--name", "pets-in-parts")
    assert run.returncode == 0, run.stderr
    assert re.search(r"upload pets\.csv\s+━+\s+[\d.]+/[\d.]+ kB", run.stderr), run.stderr
    dataset_id = re.search(r"dataset (ds_\w+): 20000 rows", run.stdout).group(1)
    with api_stack.client(key) as http:
        listed = {d["id"]: d["name"] for d in http.get("/v1/datasets").json()["items"]}
    assert listed[dataset_id] == "pets-in-parts"


def test_the_python_client_uploads_in_parts(api_stack, key, big_csv, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with Client(api_stack.url, key) as client:
        ds = client.datasets.upload(big_csv, target="label", resumable=True, progress=False)
    assert ds["sha256"] == one_shot(api_stack, key, big_csv)["sha256"]
    small = tmp_path / "small.csv"
    small.write_bytes(csv_bytes(*blobs(30)))
    mark = len(api_stack.api_log())
    with Client(api_stack.url, key) as client:  # under the threshold: one request, as before
        assert client.datasets.upload(small, target="label")["rows"] == 30
    log = api_stack.api_log()[mark:]
    assert "POST /v1/datasets HTTP" in log and "/v1/uploads" not in log
    assert hashlib.sha256(small.read_bytes()).hexdigest()  # the file is untouched
