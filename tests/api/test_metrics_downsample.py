"""GET /v1/jobs/{id}/metrics?max_points=N: a long history cut to N points per kind, spikes kept."""
import math
import time
from types import SimpleNamespace

import pytest

from app.db import get_session_factory
from app.jobs.downsample import downsample
from app.models import Metric
from tests.e2e.helpers import blobs, mlp_spec, upload_npz


def points(values):
    return [SimpleNamespace(step=i + 1, values={"train_loss": v}) for i, v in enumerate(values)]


def test_a_short_history_comes_back_whole():
    history = points([1.0, 0.5, 0.25])
    assert downsample(history, 10) == history


def test_spikes_and_dips_survive_the_cut():
    values = [1.0 / (1 + i) for i in range(10_000)]
    values[4321], values[7777] = 50.0, -3.0  # a divergence spike and a dip, one point each
    kept = downsample(points(values), 300)
    assert len(kept) <= 300
    steps = [p.step for p in kept]
    assert steps == sorted(set(steps)) and steps[0] == 1 and steps[-1] == 10_000
    assert 4322 in steps and 7778 in steps
    assert max(p.values["train_loss"] for p in kept) == 50.0


def test_points_without_a_value_are_kept_as_gaps():
    values = [float(i) for i in range(1000)]
    values[500] = math.nan
    kept = downsample(points(values), 40)
    assert any(p.step == 501 for p in kept)


@pytest.fixture
def long_job(api, deployment):
    """A job whose history a worker would have written: 10,000 epochs and 20,000 logged steps."""
    x, y = blobs(40)
    job_id = api.post("/v1/jobs", json=mlp_spec(upload_npz(api, x, y)["id"])).json()["id"]
    with get_session_factory()() as db:
        rows = []
        for epoch in range(1, 10_001):
            for k in (1, 2):
                rows.append(dict(job_id=job_id, kind="step", epoch=epoch, step=2 * epoch - 2 + k,
                                 values={"train_loss": 1.0 / epoch, "lr": 0.1}))
            rows.append(dict(job_id=job_id, kind="epoch", epoch=epoch, step=2 * epoch,
                             values={"train_loss": 9.0 if epoch == 6000 else 1.0 / epoch, "val_loss": 1.0}))
        db.execute(Metric.__table__.insert(), rows)
        db.commit()
    return job_id


def test_the_route_cuts_each_kind_and_keeps_the_spike(api, long_job):
    started = time.perf_counter()
    body = api.get(f"/v1/jobs/{long_job}/metrics", params={"max_points": 500}).json()
    took = time.perf_counter() - started
    assert len(body["epochs"]) <= 500 and len(body["steps"]) <= 500
    assert body["epochs"][0]["epoch"] == 1 and body["epochs"][-1]["epoch"] == 10_000
    assert any(e["epoch"] == 6000 and e["train_loss"] == 9.0 for e in body["epochs"])
    assert body["epochs"][-1]["val_loss"] == 1.0 and body["last_step"] == 20_000
    print(f"30,000 points cut to {len(body['epochs'])} + {len(body['steps'])} in {took:.2f} s")
    whole = api.get(f"/v1/jobs/{long_job}/metrics", params={"after_step": 19_990}).json()
    assert len(whole["epochs"]) == 5 and len(whole["steps"]) == 10  # without max_points: as before


def test_max_points_is_bounded(api, long_job):
    r = api.get(f"/v1/jobs/{long_job}/metrics", params={"max_points": 2})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "max_points"


def test_the_history_says_which_event_it_was_read_at(api, long_job):
    """The dashboard streams from there (?after=), so a long job's page replays nothing it has."""
    assert api.get(f"/v1/jobs/{long_job}/metrics", params={"max_points": 100}).json()["last_event_id"] == 1
    api.post(f"/v1/jobs/{long_job}/cancel")  # one more status event
    assert api.get(f"/v1/jobs/{long_job}/metrics", params={"max_points": 100}).json()["last_event_id"] == 2
    assert api.get(f"/v1/jobs/{long_job}/metrics").json()["last_event_id"] == 2
