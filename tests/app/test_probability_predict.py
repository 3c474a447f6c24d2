"""A cross_entropy job trained on class-probability rows (issue 17), end to end in one process:
uploaded as inline one-hot rows, submitted, trained by the runner, then its metrics report
val_accuracy and predict answers as for index labels: softmax probabilities, argmax classes."""
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.auth.service import create_key
from app.db import get_session_factory
from app.main import create_app
from tests.e2e.helpers import blobs, mlp_spec
from tests.embedded import embedded  # noqa: F401
from worker.runner import run_job


@pytest.fixture
def api(embedded):  # noqa: F811
    with get_session_factory()() as s:
        key = create_key(db_session=s, name="k", tenant_name="probs").key
        s.commit()
    with TestClient(create_app(), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def test_a_job_on_one_hot_rows_reports_accuracy_and_predicts_classes(api):
    x, y = blobs(90)
    ds = api.post("/v1/datasets", json={"x": x.tolist(), "y": np.eye(3, dtype=int)[y].tolist()}).json()
    spec = mlp_spec(ds["id"], epochs=15, device="cpu")
    job = api.post("/v1/jobs", json=spec)
    assert job.status_code == 202, job.text
    run_job(job.json()["id"])
    done = api.get(f"/v1/jobs/{job.json()['id']}").json()
    assert done["status"] == "succeeded", done

    epochs = api.get(f"/v1/jobs/{done['id']}/metrics").json()["epochs"]
    assert len(epochs) == 15 and all(0 <= e["val_accuracy"] <= 1 for e in epochs)
    assert epochs[-1]["val_accuracy"] > 0.6  # it learned: chance is 1/3 (the exact values: test_equivalence)

    r = api.post(f"/v1/jobs/{done['id']}/predict", json={"inputs": x[:12].tolist()})
    assert r.status_code == 200, r.text
    got = r.json()
    outputs, probs = torch.tensor(got["outputs"]), torch.tensor(got["probabilities"])
    assert torch.allclose(probs, torch.softmax(outputs, dim=1), atol=1e-6)
    assert got["labels"] == outputs.argmax(dim=1).tolist()  # class indices: rows have no class names
    assert (np.array(got["labels"]) == y[:12]).mean() > 0.6
