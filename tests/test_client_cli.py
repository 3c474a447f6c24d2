"""The Python client and the `trainyard` CLI against a running deployment (both of them)."""
import csv
import io
import os
import re
import subprocess
import sys

import pexpect
import pytest

from app.client import Client, ServerUnreachable, TrainyardError
from tests.e2e.helpers import blobs, csv_bytes, diverging_spec, mlp_spec, upload_npz, wait_for
from tests.proxy import CutResponses
from tests.stack import ROOT, free_port


def cli_env(stack, key: str, tmp_path, **extra) -> dict:
    env = {**os.environ, "TRAINYARD_URL": stack.url, "TRAINYARD_API_KEY": key,
           "TRAINYARD_CONFIG": str(tmp_path / "absent.toml"), "COLUMNS": "160", **extra}
    return {k: v for k, v in env.items() if v is not None}


def plain(screen: str) -> str:
    """Terminal output without its colours and cursor moves."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "")


def table_rows(out: str) -> list[list[str]]:
    """The rows of a printed table whose every cell is a number (headers and notes left out)."""
    def number(cell: str) -> bool:
        try:
            return float(cell) is not None
        except ValueError:
            return False
    return [cells for cells in (line.split() for line in out.splitlines()) if cells and all(map(number, cells))]


def cli(env: dict, *args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


# ---- the Python client ---------------------------------------------------------------

def test_client_errors_carry_the_servers_body(stack, client):
    with pytest.raises(TrainyardError) as refused:
        client.submit({"dataset": "ds_nope", "model": {"layers": []}, "loss": {"type": "mse"},
                       "optimizer": {"type": "sgd"}})
    assert refused.value.status == 422
    assert {e["field"] for e in refused.value.errors} == {"model.layers"}
    assert refused.value.body["errors"] == refused.value.errors
    assert "model.layers" in str(refused.value)

    with pytest.raises(TrainyardError) as missing:
        client.get("job_missing")
    assert missing.value.status == 404 and missing.value.detail == "no job 'job_missing'"
    with pytest.raises(TrainyardError) as unauthorized, Client(stack.url, "ty_wrong") as bad:
        bad.list_jobs()
    assert unauthorized.value.status == 401
    with pytest.raises(ServerUnreachable), Client(f"http://127.0.0.1:{free_port()}", "k") as down:
        down.get("job_x")


def test_client_stream_resumes_after_dropped_connections(stack, client, key):
    x, y = blobs(120)
    job = client.submit(mlp_spec(upload_npz(client.http, x, y)["id"], epochs=10, batch_size=4))
    proxy = CutResponses(stack.port, cuts=3, after_bytes=900)
    try:
        with Client(proxy.url, key) as through_proxy:
            events = list(through_proxy.stream(job["id"]))
    finally:
        proxy.close()
    assert proxy.connections >= 4  # three dropped, then one to the end
    ids = [e.id for e in events if e.event != "end"]
    assert ids == list(range(1, len(ids) + 1))
    assert events[-1].event == "end" and events[-1].data["status"] == "succeeded"
    assert [(e.id, e.data) for e in events] == [(e.id, e.data) for e in client.stream(job["id"])]

    epochs = client.metrics(job["id"])
    assert [p["epoch"] for p in epochs] == list(range(1, 11))
    frame = client.metrics(job["id"], kind="step", as_frame=True)
    pandas = pytest.importorskip("pandas")
    assert isinstance(frame, pandas.DataFrame) and list(frame["step"]) == \
        [e.data["step"] for e in events if e.event == "step"]
    assert client.wait(job["id"], timeout=5)["status"] == "succeeded"


# ---- the CLI -------------------------------------------------------------------------

def test_follow_in_a_terminal_shows_progress_and_exits_0_on_success(stack, key, tmp_path, api):
    x, y = blobs(160)
    job = api.post("/v1/jobs", json=mlp_spec(upload_npz(api, x, y)["id"], epochs=30,
                                             batch_size=2)).json()
    child = pexpect.spawn(sys.executable, ["-m", "app.cli", "follow", job["id"]], cwd=str(ROOT),
                          env=cli_env(stack, key, tmp_path), dimensions=(30, 160),
                          encoding="utf-8", timeout=120)
    child.expect(r"epoch \d+/30")  # the live bar, while the job trains
    live = child.before + child.after
    child.expect(pexpect.EOF)
    child.close()
    screen = plain(live + child.before)
    assert child.exitstatus == 0, screen
    assert re.search(r"running\s.*\d+/\d+\s+epoch \d+/30\s+ETA", screen), screen
    assert re.search(r"\nloss [\d.e-]+\s+val_loss [\d.e-]+\s+val_accuracy", screen), screen
    assert re.search(r"succeeded job_\w+: train_loss", screen), screen


def test_submit_follow_exits_non_zero_when_the_job_fails(stack, key, tmp_path, api):
    spec = tmp_path / "diverges.json"
    spec.write_text(__import__("json").dumps(diverging_spec(api)))
    child = pexpect.spawn(sys.executable, ["-m", "app.cli", "submit", str(spec), "--follow"],
                          cwd=str(ROOT), env=cli_env(stack, key, tmp_path), dimensions=(30, 160),
                          encoding="utf-8", timeout=120)
    child.expect(pexpect.EOF)
    child.close()
    screen = plain(child.before)
    assert child.exitstatus == 1, screen
    assert re.search(r"failed job_\w+: diverged at epoch", screen), screen


def test_cli_end_to_end_without_a_terminal(stack, key, tmp_path):
    env = cli_env(stack, key, tmp_path)
    x, y = blobs(60)
    (tmp_path / "d.csv").write_bytes(csv_bytes(x, [["cat", "dog", "emu"][i] for i in y]))
    spec = mlp_spec("replaced-by---dataset", epochs=3)
    (tmp_path / "job.json").write_text(__import__("json").dumps(spec))

    up = cli(env, "datasets", "upload", str(tmp_path / "d.csv"), "--target", "label")
    assert up.returncode == 0 and "classes ['cat', 'dog', 'emu']" in up.stdout, up.stderr
    run = cli(env, "submit", str(tmp_path / "job.json"), "--dataset", str(tmp_path / "d.csv"),
              "--target", "label", "--follow")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "epoch 3/3" in run.stdout and "succeeded" in run.stdout
    job_id = run.stdout.split("job ", 1)[1].split()[0]

    status = cli(env, "status", job_id)
    assert status.returncode == 0 and "succeeded" in status.stdout and "val_loss" in status.stdout
    assert job_id in cli(env, "list").stdout
    rows = list(csv.DictReader(io.StringIO(cli(env, "metrics", job_id, "--csv").stdout)))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"] and float(rows[-1]["train_loss"]) > 0

    down = cli(env, "download", job_id, "--format", "onnx", "-o", str(tmp_path / "m.onnx"))
    assert down.returncode == 0 and "max abs difference" in down.stdout, down.stderr
    assert (tmp_path / "m.onnx").stat().st_size > 0
    int8 = cli(env, "download", job_id, "--format", "onnx-int8", cwd=tmp_path)
    assert int8.returncode == 0, int8.stderr
    assert "measured on: validation 15" in int8.stdout and "accuracy int8: " in int8.stdout, int8.stdout
    assert "quantized nodes: 2" in int8.stdout and "left float: none" in int8.stdout
    assert (tmp_path / f"{job_id}.int8.onnx").stat().st_size > 0 and "size vs fp32: " in int8.stdout
    assert cli(env, "download", job_id, "--format", "onnx-int4").returncode == 2
    assert cli(env, "download", job_id, cwd=tmp_path).returncode == 0
    assert (tmp_path / f"{job_id}.safetensors").exists()

    png = cli(env, "plot", job_id, "-o", str(tmp_path / "curve.png"))
    assert png.returncode == 0, png.stderr
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_workers_and_a_waiting_jobs_reason(stack, key, tmp_path, api):
    env = cli_env(stack, key, tmp_path)
    listing = cli(env, "workers")
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"cpu0-\d+@\S+\s+.*cores\)\s+\d+ GiB\s+online\s+idle", listing.stdout), listing.stdout
    assert "online: 0 GPU, 1 CPU" in listing.stdout
    x, y = blobs(32)
    spec = tmp_path / "cuda.json"
    spec.write_text(__import__("json").dumps(mlp_spec(upload_npz(api, x, y)["id"], device="cuda")))
    submitted = cli(env, "submit", str(spec))
    assert "waiting: no GPU worker online" in submitted.stdout, submitted.stdout
    job_id = submitted.stdout.split("job ", 1)[1].split()[0]
    status = cli(env, "status", job_id)
    assert re.search(r"waiting\s+waiting: no GPU worker online", status.stdout), status.stdout
    assert "cancelled" in cli(env, "cancel", job_id).stdout


def test_cli_errors_cancel_and_config_file(stack, key, tmp_path, api):
    config = tmp_path / "config.toml"
    config.write_text(f'url = "{stack.url}"\napi_key = "{key}"\n')
    env = cli_env(stack, key, tmp_path, TRAINYARD_URL=None, TRAINYARD_API_KEY=None,
                  TRAINYARD_CONFIG=str(config))
    x, y = blobs(32)
    spec = mlp_spec(upload_npz(api, x, y)["id"], epochs=1)
    job = wait_for(api, api.post("/v1/jobs", json=spec).json()["id"])
    assert "succeeded" in cli(env, "status", job["id"]).stdout  # url and key from the file

    missing = cli(env, "status", "job_missing")
    assert missing.returncode == 1 and "404 no job 'job_missing'" in missing.stderr
    cancel = cli(env, "cancel", job["id"])
    if "cannot cancel" in cancel.stderr:  # until POST /v1/jobs/{id}/cancel exists
        assert cancel.returncode == 1 and ("404" in cancel.stderr or "405" in cancel.stderr)
    else:  # it exists: a finished job cannot be cancelled, or it says so
        assert cancel.returncode in (0, 1), cancel.stderr
    no_key = cli({**env, "TRAINYARD_CONFIG": str(tmp_path / "none.toml")}, "list")
    assert no_key.returncode == 2 and "no API key" in no_key.stderr
    bad = cli({**env, "TRAINYARD_API_KEY": "ty_wrong"}, "list")
    assert bad.returncode == 1 and "401" in bad.stderr


def test_names_labels_and_delete_from_the_client_and_the_cli(stack, key, tmp_path, client, api):
    env = cli_env(stack, key, tmp_path)
    tag = os.urandom(4).hex()  # alice's jobs are shared by this module's tests: filter on this run's label
    spec = mlp_spec(upload_npz(api, *blobs(40))["id"], epochs=1)
    (tmp_path / "job.json").write_text(__import__("json").dumps({**spec, "labels": {"from": "file"}}))
    submitted = cli(env, "submit", str(tmp_path / "job.json"), "--name", f"cli-{tag}", "--label", f"run={tag}",
                    "-l", "team:vision", "--follow")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    cli_job = submitted.stdout.split("job ", 1)[1].split()[0]
    assert client.jobs.get(cli_job)["labels"] == {"from": "file", "run": tag, "team": "vision"}

    made = client.jobs.create(spec, name=f"py-{tag}", labels={"run": tag, "team": "nlp"})
    assert made["name"] == f"py-{tag}"
    client.wait(made["id"], timeout=60)
    assert [j["id"] for j in client.jobs.list(label={"run": tag})["items"]] == [made["id"], cli_job]
    assert [j["id"] for j in client.jobs.list(label=[f"run:{tag}", "team:vision"])["items"]] == [cli_job]
    assert [j["id"] for j in client.jobs.list(name_prefix=f"py-{tag}")["items"]] == [made["id"]]

    listing = cli(env, "list", "--label", f"run={tag}", "--label", "team=vision")
    assert listing.returncode == 0 and cli_job in listing.stdout and made["id"] not in listing.stdout, listing.stdout
    assert f"cli-{tag}" in listing.stdout
    status = cli(env, "status", cli_job)
    assert re.search(rf"name\s+cli-{tag}", status.stdout) and f"run={tag}" in status.stdout, status.stdout
    bad = cli(env, "list", "--label", "no-separator")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr

    client.jobs.delete(made["id"])
    with pytest.raises(TrainyardError) as gone:
        client.jobs.get(made["id"])
    assert gone.value.status == 404
    deleted = cli(env, "delete", cli_job)
    assert deleted.returncode == 0 and f"deleted job {cli_job}" in deleted.stdout, deleted.stderr
    again = cli(env, "delete", cli_job)
    assert again.returncode == 1 and "404" in again.stderr
    assert client.jobs.list(label={"run": tag})["total"] == 0


def test_client_manages_the_tenants_keys(stack, client):
    """ty.keys over the API, against a real API process: the new key works, is listed without its
    secret, and is refused as soon as it is revoked (the process drops its cached entry)."""
    made = client.keys.create("ci", expires_at="2099-01-01")
    assert made["key"].startswith("ty_") and made["expires_at"].startswith("2099-01-01")
    with Client(stack.url, made["key"]) as ci:
        assert {k["id"] for k in ci.keys.list()["items"]} == {k["id"] for k in client.keys.list()["items"]}
        listed = {k["id"]: k for k in client.keys.list()["items"]}
        assert listed[made["id"]]["status"] == "active" and "key" not in listed[made["id"]]
        client.keys.revoke(made["id"])
        with pytest.raises(TrainyardError) as refused:
            ci.keys.list()
        assert refused.value.status == 401 and refused.value.detail == "unknown or revoked API key"
    assert {k["id"]: k for k in client.keys.list()["items"]}[made["id"]]["status"] == "revoked"
    with pytest.raises(TrainyardError) as past:
        client.keys.create("old", expires_at="2020-01-01")
    assert past.value.status == 422 and [e["field"] for e in past.value.errors] == ["expires_at"]


def test_cli_metrics_table_is_cut_and_csv_writes_json(stack, key, tmp_path, api):
    env = cli_env(stack, key, tmp_path)
    x, y = blobs(48)
    job = wait_for(api, api.post("/v1/jobs", json=mlp_spec(upload_npz(api, x, y)["id"], epochs=90)).json()["id"])
    assert job["status"] == "succeeded"

    table = cli(env, "metrics", job["id"])
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert header == ["epoch", "train_loss", "val_loss", "val_accuracy", "lr", "epoch_seconds"]
    rows = table_rows(table.stdout)
    assert 4 <= len(rows) <= 40 and rows[0][0] == "1" and rows[-1][0] == "90"  # first and last kept
    assert f"{len(rows)} of 90 epochs" in table.stdout and "--all" in table.stdout
    every = cli(env, "metrics", job["id"], "--all")
    assert [r[0] for r in table_rows(every.stdout)] == [str(e) for e in range(1, 91)]
    assert "of 90 epochs" not in every.stdout

    points = list(csv.DictReader(io.StringIO(cli(env, "metrics", job["id"], "--csv").stdout)))
    assert [p["epoch"] for p in points] == [str(e) for e in range(1, 91)]  # CSV is never cut
    norms = __import__("json").loads(points[-1]["grad_norms"])  # JSON, not a Python repr
    assert isinstance(norms, dict) and norms and all(isinstance(v, float) for v in norms.values())


def test_cli_cancel_of_a_running_job_says_what_happens_next(stack, key, tmp_path, api):
    x, y = blobs(400)
    job = api.post("/v1/jobs", json=mlp_spec(upload_npz(api, x, y)["id"], epochs=500, batch_size=1)).json()
    wait_for(api, job["id"], statuses=("running",))
    said = cli(cli_env(stack, key, tmp_path), "cancel", job["id"])
    assert said.returncode == 0, said.stderr
    assert "cancel requested; the worker stops it at its next check" in said.stdout
    assert f"trainyard follow {job['id']}" in said.stdout
    assert wait_for(api, job["id"])["status"] == "cancelled"


def test_cli_datasets_list_predict_and_a_plot_of_several_jobs(stack, key, tmp_path, api):
    env = cli_env(stack, key, tmp_path)
    x, y = blobs(60)
    names = ["cat", "dog", "emu"]
    (tmp_path / "d.csv").write_bytes(csv_bytes(x, [names[i] for i in y]))
    up = cli(env, "datasets", "upload", str(tmp_path / "d.csv"), "--target", "label", "--name", "pets")
    ds_id = up.stdout.split("dataset ", 1)[1].split(":")[0]
    listing = cli(env, "datasets", "list")
    assert listing.returncode == 0, listing.stderr
    assert re.search(rf"{ds_id}\s+pets\s+60\s+\[4\]\s+3 classes", listing.stdout), listing.stdout

    jobs = [wait_for(api, api.post("/v1/jobs", json=mlp_spec(ds_id, epochs=20, seed=s)).json()["id"])["id"]
            for s in (1, 2)]
    # The training file itself: its header names the features, its target column is left out.
    predicted = cli(env, "predict", jobs[0], "--input", str(tmp_path / "d.csv"))
    assert predicted.returncode == 0, predicted.stderr
    served = api.post(f"/v1/jobs/{jobs[0]}/predict", json={"inputs": x.tolist()}).json()
    rows = [line.split() for line in predicted.stdout.splitlines()[2:] if line.strip()]  # under the header, its rule
    assert [r[1] for r in rows] == served["labels"] and len(rows) == 60
    assert float(rows[0][2]) == pytest.approx(max(served["probabilities"][0]), abs=1e-3)
    (tmp_path / "rows.json").write_text(__import__("json").dumps({"inputs": x[:2].tolist()}))
    as_json = cli(env, "predict", jobs[0], "--input", str(tmp_path / "rows.json"), "--json")
    assert __import__("json").loads(as_json.stdout)["labels"] == served["labels"][:2]
    (tmp_path / "bad.csv").write_text("a,b,c,d\n1,2,3,x\n")
    bad = cli(env, "predict", jobs[0], "--input", str(tmp_path / "bad.csv"))
    assert bad.returncode == 2 and "cannot read --input" in bad.stderr
    (tmp_path / "narrow.csv").write_text("1,2\n")  # the server refuses it, saying why
    narrow = cli(env, "predict", jobs[0], "--input", str(tmp_path / "narrow.csv"))
    assert narrow.returncode == 1 and "422 expected shape [n, 4], got shape [1, 2]" in narrow.stderr

    png = cli(env, "plot", *jobs, "--metric", "val_accuracy", "--out", str(tmp_path / "two.png"))
    assert png.returncode == 0, png.stderr
    assert (tmp_path / "two.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = cli(env, "plot", *jobs, "--metric", "no_such_metric", "-o", str(tmp_path / "none.png"))
    assert missing.returncode == 1 and "no no_such_metric values" in missing.stderr
    assert not (tmp_path / "none.png").exists()
