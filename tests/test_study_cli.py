"""Studies through the Python client and `trainyard study` against a running deployment (both of them):
the client's create/wait/leaderboard/curves/stream, and the CLI's run --follow, show, list, plot, cancel, delete."""
import csv
import io
import json
import re
import sys

import numpy as np
import pexpect
import pytest

from app.client import Client, TrainyardError
from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for
from tests.stack import ROOT
from tests.proxy import CutResponses
from tests.test_client_cli import cli, cli_env, plain

VARIANTS = [{"label": "sgd", "set": {"optimizer": {"type": "sgd", "lr": 0.1}}},
            {"label": "adam", "set": {"optimizer": {"type": "adam", "lr": 0.01}}}]
TERMINAL = ("succeeded", "failed", "cancelled", "pruned")


def study_body(api, rows: int = 90, **training) -> dict:
    """Two variants x one seed of a small MLP on blobs (3 epochs unless ``training`` says otherwise)."""
    x, y = blobs(rows)
    base = mlp_spec(upload_npz(api, x, y)["id"], **{"epochs": 3, **training})
    return {"name": "cli test", "base": base, "variants": VARIANTS, "seeds": [1],
            "objective": {"metric": "val_loss", "target": 5.0}}


def val_losses(api, job_id: str) -> list[float]:
    return [p["val_loss"] for p in api.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]]


def curve_rows_by_hand(curves: dict) -> list[dict]:
    """The curves endpoint's columns as (variant, epoch, x, mean, std, min, max, n) rows, read here."""
    return [{"variant": v["variant"], "epoch": v["epoch"][i], "x": v["x"][i], "mean": v["mean"][i],
             "std": v["std"][i], "min": v["min"][i], "max": v["max"][i], "n": v["n"][i]}
            for v in curves["variants"] for i in range(len(v["epoch"]))]


def cancel_and_drain(api, study_id: str) -> None:
    """Leaves the single worker free for the next test: the study cancelled, its members ended."""
    api.post(f"/v1/studies/{study_id}/cancel")
    for m in api.get(f"/v1/studies/{study_id}").json()["members"]:
        wait_for(api, m["job_id"], statuses=TERMINAL)


# ---- the Python client ---------------------------------------------------------------

def test_client_runs_a_study_and_reads_its_leaderboard_curves_and_stream(stack, client, key, api):
    created = client.studies.create(study_body(api))
    assert created["status"] == "running" and created["planned"] == 2
    events = list(client.studies.stream(created["id"]))
    study = client.studies.wait(created["id"], timeout=60)
    assert study["status"] == "completed" and study["counts"] == {"succeeded": 2}, study

    # In order: the board as it was, then the log numbered 1, 2, ..., and `end` last.
    assert events[0].event == "leaderboard" and events[0].id is None
    ids = [e.id for e in events if e.id is not None]
    assert ids == list(range(1, len(ids) + 1))
    assert events[-1].event == "end" and events[-1].data["status"] == "completed"
    ended = [i for i, e in enumerate(events) if e.event == "member" and e.data["status"] == "succeeded"]
    assert sorted(events[i].data["job_id"] for i in ended) == sorted(m["job_id"] for m in study["members"])
    # Boards carry no id (they are recomputed, not logged); each counts at least the ends before it.
    assert all(e.id is None for e in events if e.event in ("leaderboard", "end"))
    for i, e in enumerate(events):
        if e.event == "leaderboard":
            counted = sum(r["members"].get("succeeded", 0) for r in e.data["rows"])
            assert counted >= sum(j < i for j in ended)
    assert events[-1].data["leaderboard"] == client.studies.leaderboard(study["id"])

    # The board and the curves against each member's own stored history (one seed: mean = its value).
    board = client.studies.leaderboard(study["id"])
    for m in study["members"]:
        losses = val_losses(api, m["job_id"])
        row = next(r for r in board["rows"] if r["variant"] == m["variant"])
        assert np.isclose(row["final"]["mean"], losses[-1]) and row["final"]["n"] == 1
        assert np.isclose(row["best"]["mean"], min(losses))
        curve = next(c for c in client.studies.curves(study["id"])["variants"] if c["variant"] == m["variant"])
        assert curve["epoch"] == [1, 2, 3] and np.allclose(curve["mean"], losses) and curve["n"] == [1, 1, 1]
    by_step = client.studies.curves(study["id"], x="step", members=True)
    assert by_step["x"] == "step" and all(len(c["members"]) == 1 for c in by_step["variants"])
    pandas = pytest.importorskip("pandas")
    frame = client.studies.curves(study["id"], as_frame=True)
    raw = api.get(f"/v1/studies/{study['id']}/curves").json()
    assert isinstance(frame, pandas.DataFrame)
    assert frame.where(frame.notna(), None).to_dict("records") == curve_rows_by_hand(raw)

    # A dropped connection is resumed after the last id seen: the logged events come once each.
    proxy = CutResponses(stack.port, cuts=2, after_bytes=len(api.get(f"/v1/studies/{study['id']}/events").text) // 2)
    try:
        with Client(proxy.url, key) as through_proxy:
            resumed = list(through_proxy.studies.stream(study["id"]))
    finally:
        proxy.close()
    assert proxy.connections >= 2
    assert [(e.id, e.data) for e in resumed if e.id is not None] == [(e.id, e.data) for e in events if e.id is not None]
    assert resumed[-1].event == "end"

    assert [s["id"] for s in client.studies.list(status="completed", limit=500)["items"]].count(study["id"]) == 1
    client.studies.delete(study["id"])
    with pytest.raises(TrainyardError) as gone:
        client.studies.get(study["id"])
    assert gone.value.status == 404


# ---- the CLI -------------------------------------------------------------------------

def test_study_run_follow_shows_the_live_leaderboard_and_exits_0(stack, key, tmp_path, api):
    (tmp_path / "study.json").write_text(json.dumps(study_body(api)))
    child = pexpect.spawn(sys.executable, ["-m", "app.cli", "study", "run", str(tmp_path / "study.json"), "--follow"],
                          cwd=str(ROOT), env=cli_env(stack, key, tmp_path), dimensions=(40, 160),
                          encoding="utf-8", timeout=120)
    child.expect(pexpect.EOF)
    child.close()
    screen = plain(child.before)
    assert child.exitstatus == 0, screen
    study_id = re.search(r"study (study_\w+) running: 2 members", screen).group(1)
    study = api.get(f"/v1/studies/{study_id}").json()
    assert study["status"] == "completed", study
    assert re.search(r"#\s+variant\s+final val_loss\s+best\s+reached ≤ 5\s+auc\s+members", screen), screen
    for row in study["leaderboard"]["rows"]:  # the last frame: each variant ranked, with its numbers
        final = f"{row['final']['mean']:.4g} (1)"
        assert re.search(rf"{row['rank']}\s+{row['variant']}\s+{re.escape(final)}\s+.*1 succeeded", screen), screen
    assert " ".join(study["leaderboard"]["summary"].split()) in " ".join(screen.split()), screen
    assert f"completed {study_id}: 2 of 2 members succeeded" in screen, screen


def test_study_show_list_plot_and_delete_without_a_terminal(stack, key, tmp_path, api):
    env = cli_env(stack, key, tmp_path)
    (tmp_path / "study.json").write_text(json.dumps(study_body(api)))
    run = cli(env, "study", "run", str(tmp_path / "study.json"), "--follow")
    assert run.returncode == 0, run.stdout + run.stderr
    study_id = re.search(r"study (study_\w+) running", run.stdout).group(1)
    assert re.search(r"succeeded job_\w+ \(sgd\)", run.stdout) and re.search(r"succeeded job_\w+ \(adam\)", run.stdout)
    study = api.get(f"/v1/studies/{study_id}").json()

    shown = cli(env, "study", "show", study_id, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout) == study
    table = cli(env, "study", "show", study_id)
    assert re.search(r"status\s+completed", table.stdout) and re.search(r"members\s+2 planned: 2 succeeded", table.stdout)
    assert all(re.search(rf"\d\s+{v['label']}\s+[\d.]+ \(1\)", table.stdout) for v in VARIANTS), table.stdout
    assert re.search(r"leads on val_loss", table.stdout), table.stdout
    assert re.search(rf"{study_id}\s+cli test\s+completed\s+variants\s+2 planned", cli(env, "study", "list").stdout)

    png, data = tmp_path / "x.png", tmp_path / "x.csv"
    plot = cli(env, "study", "plot", study_id, "-o", str(png), "--csv", str(data), "--members", "--log-y")
    assert plot.returncode == 0, plot.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    expected = curve_rows_by_hand(api.get(f"/v1/studies/{study_id}/curves").json())
    rows = list(csv.DictReader(io.StringIO(data.read_text())))
    assert [r["variant"] for r in rows] == [e["variant"] for e in expected] and len(rows) == 6
    for row, want in zip(rows, expected):
        assert [int(row["epoch"]), int(row["n"])] == [want["epoch"], want["n"]] and row["std"] == ""
        assert np.allclose([float(row[k]) for k in ("x", "mean", "min", "max")], [want[k] for k in ("x", "mean", "min", "max")])
    to_stdout = cli(env, "study", "plot", study_id, "-o", str(tmp_path / "s.png"), "--x", "step", "--csv", "-")
    by_step = curve_rows_by_hand(api.get(f"/v1/studies/{study_id}/curves", params={"x": "step"}).json())
    assert [float(r["x"]) for r in csv.DictReader(io.StringIO(to_stdout.stdout))] == [r["x"] for r in by_step]

    deleted = cli(env, "study", "delete", study_id)
    assert deleted.returncode == 0 and f"deleted study {study_id}" in deleted.stdout
    missing = cli(env, "study", "show", study_id)
    assert missing.returncode == 1 and f"404 no study '{study_id}'" in missing.stderr


def test_study_run_refusal_names_the_field_and_cancel_ends_the_study(stack, key, tmp_path, api):
    env = cli_env(stack, key, tmp_path)
    bad = study_body(api)
    bad["variants"] = [*VARIANTS, {"label": "broken", "set": {"optimizer.lr": -1}}]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    refused = cli(env, "study", "run", str(tmp_path / "bad.json"))
    assert refused.returncode == 1 and "422" in refused.stderr, refused.stderr
    assert "variants[2]" in refused.stderr and "lr" in refused.stderr, refused.stderr

    (tmp_path / "short.json").write_text(json.dumps(study_body(api)))
    waited = cli(env, "study", "run", str(tmp_path / "short.json"), "--follow", "--json")
    assert waited.returncode == 0, waited.stderr
    ended = json.loads(waited.stdout)  # only the ended study: stdout stays JSON
    assert ended["status"] == "completed" and ended["counts"] == {"succeeded": 2}

    (tmp_path / "long.json").write_text(json.dumps({**study_body(api, rows=400, epochs=500, batch_size=2), "parallel": 1}))
    started = cli(env, "study", "run", str(tmp_path / "long.json"), "--json")
    study_id = json.loads(started.stdout)["id"]
    try:
        cancelled = cli(env, "study", "cancel", study_id)
        assert cancelled.returncode == 0 and f"study {study_id} cancelled" in cancelled.stdout, cancelled.stderr
        again = cli(env, "study", "cancel", study_id)
        assert again.returncode == 1 and "409" in again.stderr
    finally:
        cancel_and_drain(api, study_id)


def test_ctrl_c_stops_following_and_leaves_the_study_running(stack, key, tmp_path, api):
    (tmp_path / "long.json").write_text(json.dumps({**study_body(api, rows=400, epochs=500, batch_size=2), "parallel": 1}))
    child = pexpect.spawn(sys.executable, ["-m", "app.cli", "study", "run", str(tmp_path / "long.json"), "--follow"],
                          cwd=str(ROOT), env=cli_env(stack, key, tmp_path), dimensions=(40, 160),
                          encoding="utf-8", timeout=60)
    child.expect(r"(study_[0-9a-f]+)")
    study_id = child.match.group(1)
    try:
        child.expect(r"\d/2 ended")  # the live table is up
        child.sendintr()
        child.expect(pexpect.EOF)
        child.close()
        screen = plain(child.before)
        assert child.exitstatus == 130, screen
        assert f"stopped following; the study goes on (trainyard study show {study_id}" in screen, screen
        assert api.get(f"/v1/studies/{study_id}").json()["status"] == "running"
    finally:
        cancel_and_drain(api, study_id)
