"""training.devices: the data parallel pre-flight. 422s naming training.devices for what N ranks cannot
make equal to one process, nothing created; a job on one device is stored as before the field existed."""
import pytest

from app.ml.spec import JobSpec
from tests.e2e.helpers import blobs, errors_for, upload_npz

LAYERS = [{"type": "linear", "out_features": 6}, {"type": "tanh"}, {"type": "linear", "out_features": 3}]


@pytest.fixture
def dataset(api):
    x, y = blobs(60)
    return upload_npz(api, x, y)["id"]


def job(dataset, layers=None, optimizer="adam", devices=2, batch_size=16, **sections) -> dict:
    body = {"dataset": dataset, "loss": {"type": "cross_entropy"}, "optimizer": {"type": optimizer},
            "model": {"layers": layers or LAYERS},
            "training": {"epochs": 2, "batch_size": batch_size, "devices": devices, "device": "cpu"}}
    body.update(sections)
    return body


def refused(api, body) -> str:
    before = api.get("/v1/jobs").json()
    r = api.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    assert api.get("/v1/jobs").json() == before
    return errors_for(r)["training.devices"]


def test_two_devices_plan(api, dataset):
    r = api.post("/v1/jobs", json=job(dataset), params={"dry_run": "true"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("optimizer", ["lbfgs", "newton", "levenberg_marquardt", "conjugate_gradient",
                                       "scaled_conjugate_gradient"])
def test_second_order_and_line_search_optimizers_are_refused(api, dataset, optimizer):
    body = job(dataset, optimizer=optimizer, batch_size="full", loss={"type": "mse"},
               model={"layers": [*LAYERS[:2], {"type": "linear", "out_features": 1}]})
    assert f"optimizer {optimizer}" in refused(api, body)


def test_batch_norm_and_dropout_are_refused(api, dataset):
    norm = [LAYERS[0], {"type": "batchnorm1d"}, *LAYERS[1:]]
    assert "batch norm" in refused(api, job(dataset, layers=norm))
    drop = [LAYERS[0], {"type": "dropout", "p": 0.1}, *LAYERS[1:]]
    assert "dropout masks" in refused(api, job(dataset, layers=drop))


def test_class_weights_and_batches_smaller_than_the_ranks_are_refused(api, dataset):
    assert "loss.weight" in refused(api, job(dataset, loss={"type": "cross_entropy", "weight": [1, 2, 3]}))
    assert "at least 3" in refused(api, job(dataset, devices=3, batch_size=2))


def test_devices_must_be_positive(api, dataset):
    r = api.post("/v1/jobs", json=job(dataset, devices=0))
    assert r.status_code == 422 and "training.devices" in errors_for(r)


def test_one_device_is_stored_as_before_the_field(dataset):
    spec = JobSpec.model_validate(job(dataset, devices=1))
    assert "devices" not in spec.model_dump()["training"]
    assert JobSpec.model_validate(job(dataset)).model_dump()["training"]["devices"] == 2
