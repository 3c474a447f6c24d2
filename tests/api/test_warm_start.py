"""init (warm start, freeze) and distill through the API: the pre-flight's 422s name the field with
the figures, and a job that passes trains from its source in this process's worker runner."""
import numpy as np
import pytest
from safetensors.torch import load

from tests.api.routes import queued_job
from tests.e2e.helpers import blobs, errors_for, mlp_spec, upload_npz
from worker.runner import run_job


@pytest.fixture
def dataset(api) -> dict:
    return upload_npz(api, *blobs(120))


def trained(api, spec: dict) -> str:
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    run_job(r.json()["id"])
    assert api.get(f"/v1/jobs/{r.json()['id']}").json()["status"] == "succeeded"
    return r.json()["id"]


def first_epoch_loss(api, job_id: str) -> float:
    return api.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"][0]["train_loss"]


def weights(api, job_id: str) -> dict:
    return load(api.get(f"/v1/jobs/{job_id}/weights").content)


def test_a_warm_started_job_trains_from_its_source_with_frozen_layers_kept(api, dataset):
    source = trained(api, mlp_spec(dataset["id"], epochs=30))
    cold = trained(api, mlp_spec(dataset["id"], epochs=2, seed=9))
    warm = trained(api, {**mlp_spec(dataset["id"], epochs=2, seed=9),
                         "init": {"from_job": source, "freeze": ["layers[0]"]}})
    assert first_epoch_loss(api, warm) < 0.25 * first_epoch_loss(api, cold)
    src, out = weights(api, source), weights(api, warm)
    assert np.array_equal(out["0.weight"].numpy(), src["0.weight"].numpy())  # frozen: bit for bit
    assert not np.array_equal(out["2.weight"].numpy(), src["2.weight"].numpy())  # trained on
    assert api.get(f"/v1/jobs/{warm}/spec").json()["spec"]["init"]["from_job"] == source


def test_the_layer_that_does_not_fit_is_named_with_both_shapes(api, dataset):
    source = trained(api, mlp_spec(dataset["id"], epochs=1))
    spec = mlp_spec(dataset["id"])
    spec["model"]["layers"][2]["out_features"] = 5
    spec["init"] = {"from_job": source, "layers": ["layers[0]", "layers[2]"]}
    for query in ("?dry_run=true", ""):
        r = api.post(f"/v1/jobs{query}", json=spec)
        assert r.status_code == 422
        assert errors_for(r) == {"init.layers[1]": f"model.layers[2] weight is (5, 16) here but (3, 16) in {source}"}
    spec["init"] = {"from_job": source}  # "all": the first layer that does not fit
    assert "model.layers[2] weight is (5, 16)" in errors_for(api.post("/v1/jobs", json=spec))["init.layers"]


@pytest.mark.parametrize("init, field, says", [
    ({"layers": ["layers[1]"]}, "init.layers[0]", "model.layers[1] is a relu: it has no weights to copy"),
    ({"layers": ["layers[7]"]}, "init.layers[0]", "layers[7] is past the model's last layer, layers[2]"),
    ({"layers": ["layers[2]"], "freeze": ["layers[0]"]}, "init.freeze[0]", "is not copied from"),
    ({"freeze": ["layers[0]", "layers[2]"]}, "init.freeze", "nothing would train"),
    ({"layers": ["0"]}, "init.layers", "is not a layer path"),
])
def test_bad_layer_paths_are_422_naming_the_entry(api, dataset, init, field, says):
    source = trained(api, mlp_spec(dataset["id"], epochs=1))
    r = api.post("/v1/jobs", json={**mlp_spec(dataset["id"]), "init": {"from_job": source, **init}})
    assert r.status_code == 422
    assert says in errors_for(r)[field], r.json()


def test_the_source_must_be_the_tenant_s_succeeded_job(api, other_api, dataset):
    queued = queued_job(api, dataset["id"])["id"]
    r = api.post("/v1/jobs", json={**mlp_spec(dataset["id"]), "init": {"from_job": queued}})
    assert errors_for(r) == {"init.from_job": f"{queued} is queued; only a succeeded job's weights can be used"}
    r = api.post("/v1/jobs", json={**mlp_spec(dataset["id"]), "distill": {"teacher": "job_nope"}})
    assert errors_for(r) == {"distill.teacher": "no job 'job_nope'"}
    source = trained(api, mlp_spec(dataset["id"], epochs=1))
    theirs = upload_npz(other_api, *blobs(120))
    r = other_api.post("/v1/jobs", json={**mlp_spec(theirs["id"]), "init": {"from_job": source}})
    assert errors_for(r) == {"init.from_job": f"no job {source!r}"}  # another tenant's: not found


def test_a_distilled_student_trains_and_the_teacher_must_fit(api, dataset):
    teacher = trained(api, mlp_spec(dataset["id"], epochs=20))
    student = {**mlp_spec(dataset["id"], epochs=3), "distill": {"teacher": teacher, "temperature": 2.0, "alpha": 0.7}}
    student["model"] = {"layers": [{"type": "linear", "out_features": 3}]}
    job = trained(api, student)
    epochs = api.get(f"/v1/jobs/{job}/metrics").json()["epochs"]
    assert len(epochs) == 3 and epochs[-1]["val_loss"] > 0

    r = api.post("/v1/jobs", json={**student, "loss": {"type": "nll"}})
    assert "distillation trains a cross_entropy student" in errors_for(r)["loss.type"]
    wide = {**student, "model": {"layers": [{"type": "linear", "out_features": 4}]}}
    r = api.post("/v1/jobs", json=wide)
    assert errors_for(r)["distill.teacher"].startswith(f"{teacher} gives outputs of shape [3], but this model gives [4]")
    x, y = blobs(60)
    other = upload_npz(api, np.concatenate([x, x[:, :1]], axis=1), y)
    r = api.post("/v1/jobs", json={**student, "dataset": other["id"]})
    assert errors_for(r) == {"distill.teacher": f"{teacher} takes rows of shape [4], but this dataset's rows are [5]"}
