"""Studies through the HTTP API with real workers, on both deployments: a variants x seeds study runs to
completion with each member equal to the same spec as a lone job and a leaderboard that numpy reproduces;
a search prunes losing trials with a reason that shows the numbers; cancelling a study ends every member."""
import time

import numpy as np
from scipy import stats

from app.client import parse_sse
from tests.e2e.helpers import blobs, mlp_spec, upload_npz, wait_for

VARIANTS = [
    {"label": "sgd", "set": {"optimizer": {"type": "sgd", "lr": 0.05}}},
    {"label": "nesterov", "set": {"optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True}}},
    {"label": "adam", "set": {"optimizer": {"type": "adam", "lr": 0.01}}},
]


def wait_study(api, study_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"/v1/studies/{study_id}").json()
        if body["status"] != "running":
            return body
        time.sleep(0.2)
    raise AssertionError(f"study still running after {timeout} s: {body['counts']}")


def histories(api, study: dict) -> dict[str, list[dict]]:
    return {m["job_id"]: api.get(f"/v1/jobs/{m['job_id']}/metrics").json()["epochs"] for m in study["members"]}


def untimed(points: list[dict]) -> list[dict]:
    """Epoch points without the clock's readings, which no two runs share."""
    return [{k: v for k, v in p.items() if k not in ("epoch_seconds", "samples_per_second")} for p in points]


def test_a_variants_study_completes_and_its_leaderboard_is_the_members_arithmetic(api):
    x, y = blobs(120)
    ds = upload_npz(api, x, y)
    body = {"base": mlp_spec(ds["id"], epochs=5), "variants": VARIANTS, "seeds": [1, 2],
            "objective": {"metric": "val_loss", "target": 0.6}}
    r = api.post("/v1/studies", json=body)
    assert r.status_code == 201, r.text
    study = wait_study(api, r.json()["id"])
    assert study["status"] == "completed" and study["counts"] == {"succeeded": 6}, study
    points = histories(api, study)

    # A member is an ordinary job: the same spec submitted alone trains to the same history.
    member = study["members"][4]
    alone = api.post("/v1/jobs", json=api.get(f"/v1/jobs/{member['job_id']}/spec").json()["spec"]).json()
    assert wait_for(api, alone["id"])["status"] == "succeeded"
    assert untimed(api.get(f"/v1/jobs/{alone['id']}/metrics").json()["epochs"]) == untimed(points[member["job_id"]])

    # The leaderboard, recomputed here from the stored histories.
    rows = {row["variant"]: row for row in study["leaderboard"]["rows"]}
    finals = {}
    for v in VARIANTS:
        jobs = [m["job_id"] for m in study["members"] if m["variant"] == v["label"]]
        curves = [[p["val_loss"] for p in points[j]] for j in jobs]
        finals[v["label"]] = [c[-1] for c in curves]
        row = rows[v["label"]]
        assert row["final"]["n"] == 2 and row["seeds"] == [1, 2]
        assert np.isclose(row["final"]["mean"], np.mean(finals[v["label"]]))
        assert np.isclose(row["final"]["std"], np.std(finals[v["label"]], ddof=1))
        assert np.isclose(row["best"]["min"], min(min(c) for c in curves))
        assert np.isclose(row["auc"]["mean"], np.mean([np.trapezoid(c, x=range(1, 6)) for c in curves]))
        reached = [next((i + 1 for i, v in enumerate(c) if v <= 0.6), None) for c in curves]
        assert row["to_target"]["reached"] == sum(r is not None for r in reached)
    order = sorted(finals, key=lambda label: np.mean(finals[label]))
    assert [row["variant"] for row in study["leaderboard"]["rows"]] == order
    lead = study["leaderboard"]["lead"]
    assert study["leaderboard"]["winner"] == order[0] and lead["against"] == order[1]
    expected = stats.ttest_ind(finals[order[0]], finals[order[1]], equal_var=False).pvalue
    assert lead["test"] == "welch_t" and np.isclose(lead["p_value"], expected)

    curves = api.get(f"/v1/studies/{study['id']}/curves", params={"members": "true"}).json()
    adam = next(c for c in curves["variants"] if c["variant"] == "adam")
    adam_jobs = [m["job_id"] for m in study["members"] if m["variant"] == "adam"]
    assert adam["x"] == [1, 2, 3, 4, 5]
    assert np.allclose(adam["mean"], np.mean([[p["val_loss"] for p in points[j]] for j in adam_jobs], axis=0))

    # The study's stream replays every member's life and ends with the final leaderboard.
    events = list(parse_sse(iter(api.get(f"/v1/studies/{study['id']}/events").text.splitlines())))
    ended = [e.data["job_id"] for e in events if e.event == "member" and e.data["status"] == "succeeded"]
    assert sorted(ended) == sorted(m["job_id"] for m in study["members"])
    assert events[-1].event == "end" and events[-1].data["leaderboard"]["winner"] == order[0]


def test_a_search_prunes_losing_trials_and_says_why_with_the_numbers(api):
    x, y = blobs(120)
    ds = upload_npz(api, x, y)
    search = {"space": {"optimizer.lr": {"log_uniform": [1e-4, 0.5]}}, "trials": 8, "parallel": 1,
              "sampler": "random", "pruner": {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 1}}
    body = {"base": {**mlp_spec(ds["id"], epochs=6), "optimizer": {"type": "sgd", "lr": 0.01}},
            "search": search, "seeds": [4], "objective": {"metric": "val_loss"}}
    r = api.post("/v1/studies", json=body)
    assert r.status_code == 201, r.text
    study = wait_study(api, r.json()["id"])
    assert study["status"] == "completed" and len(study["members"]) == 8, study
    pruned = [m for m in study["members"] if m["status"] == "pruned"]
    assert pruned, study["counts"]
    assert all(m["status"] in ("succeeded", "pruned") for m in study["members"])
    points = histories(api, study)
    for m in pruned:
        reason = m["error"]
        mine = [p["val_loss"] for p in points[m["job_id"]]]
        epoch = len(mine)
        assert reason.startswith(f"pruned at epoch {epoch}: val_loss {min(mine):.3g} (its best so far) is above "
                                 "the median"), reason
        # The median it quotes is that of the trials completed before it (one member at a time), at that epoch.
        earlier = [points[o["job_id"]][epoch - 1]["val_loss"] for o in study["members"]
                   if o["member"] < m["member"] and o["status"] == "succeeded"]
        assert f"median {np.median(earlier):.3g} of {len(earlier)} completed trials at epoch {epoch}" in reason
        assert min(mine) > np.median(earlier) and len(earlier) >= 2


def test_cancelling_a_study_ends_every_member_running_or_waiting(api):
    x, y = blobs(200)
    ds = upload_npz(api, x, y)
    body = {"base": mlp_spec(ds["id"], epochs=200, batch_size=2, log_every_steps=50), "variants": VARIANTS,
            "seeds": [1], "objective": {"metric": "val_loss"}, "parallel": 1}
    created = api.post("/v1/studies", json=body).json()
    first = created["members"][0]["job_id"]
    wait_for(api, first, statuses=("running",))
    r = api.post(f"/v1/studies/{created['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    ends = [wait_for(api, m["job_id"]) for m in created["members"]]
    assert [j["status"] for j in ends] == ["cancelled"] * 3
    assert ends[0]["started_at"] is not None and ends[1]["started_at"] is None
