"""Builtin datasets through the HTTP API: the catalog, dry runs of each, the rows a job's
builtin becomes, and bad choices refused naming the field with nothing stored."""
import numpy as np
import pytest

from app.ml import builtin_datasets as builtin
from app.ml.data_spec import BUILTIN_SPECS
from tests.e2e.helpers import blobs, errors_for, spec_for, upload_npz


def dataset_count(api) -> int:
    return api.get("/v1/datasets").json()["total"]


def test_catalog_lists_builtins_with_parameters_and_shapes(api, anon):
    r = api.get("/v1/datasets/builtin")
    assert r.status_code == 200, r.text
    items = {b["name"]: b for b in r.json()["items"]}
    assert list(items) == list(BUILTIN_SPECS)
    moons = items["moons"]
    assert moons["defaults"] == {"n_samples": 200, "noise": 0.1, "seed": 0}
    assert moons["parameters"]["noise"]["minimum"] == 0 and moons["parameters"]["noise"]["maximum"] == 10
    assert (moons["rows"], moons["feature_shape"], moons["num_classes"]) == (200, [2], 2)
    assert items["digits"]["feature_shape"] == [1, 8, 8]
    assert items["sine_sequence"]["feature_shape"] == [20, 1] and items["sine_sequence"]["task"] == "regression"
    assert anon.get("/v1/datasets/builtin").status_code == 401


@pytest.mark.parametrize("name", list(BUILTIN_SPECS))
def test_every_builtin_dry_runs_without_storing_anything(api, name):
    shape = builtin.shapes(name, **BUILTIN_SPECS[name](name=name).params())
    outputs = shape.num_classes or 1
    loss = "cross_entropy" if shape.num_classes else "mse"
    before = dataset_count(api)
    r = api.post("/v1/jobs?dry_run=true", json=spec_for(name, outputs, loss, flatten=True,
                                                         validation_split=0.2))
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["train_rows"] + plan["validation_rows"] == shape.rows
    assert plan["layers"][0]["input_shape"] == list(shape.feature_shape)
    assert dataset_count(api) == before


@pytest.mark.services
def test_a_builtin_with_parameters_becomes_one_dataset_row_per_tenant(api, other_api):
    moons = {"name": "moons", "n_samples": 300, "noise": 0.2, "seed": 1}
    first = api.post("/v1/jobs", json=spec_for(moons, 2, epochs=3))
    assert first.status_code == 202, first.text
    ds = api.get(f"/v1/datasets/{first.json()['dataset_id']}").json()
    assert ds["name"] == "moons(n_samples=300,noise=0.2,seed=1)"
    assert (ds["source_format"], ds["rows"], ds["feature_shape"], ds["classes"]) == ("builtin", 300, [2], [0, 1])

    before = dataset_count(api)
    again = api.post("/v1/jobs", json=spec_for(moons, 2, epochs=3, seed=2)).json()
    assert again["dataset_id"] == ds["id"] and dataset_count(api) == before
    other_seed = api.post("/v1/jobs", json=spec_for({**moons, "seed": 2}, 2, epochs=3)).json()
    assert other_seed["dataset_id"] != ds["id"] and dataset_count(api) == before + 1

    # Another tenant gets its own row, and cannot see this one.
    theirs = other_api.post("/v1/jobs", json=spec_for(moons, 2, epochs=3)).json()
    assert theirs["dataset_id"] != ds["id"]
    assert other_api.get(f"/v1/datasets/{ds['id']}").status_code == 404
    # The uploaded id of the builtin's row works as a dataset too (a worker loads its rows as
    # any upload's: tests/e2e/test_builtin_datasets.py trains on builtins).
    by_id = api.post("/v1/jobs", json=spec_for(ds["id"], 2, epochs=3))
    assert by_id.status_code == 202 and by_id.json()["dataset_id"] == ds["id"]
    assert dataset_count(api) == before + 1
    assert api.get("/v1/jobs").json()["total"] == 4 and other_api.get("/v1/jobs").json()["total"] == 1


BAD = [
    ({"dataset": {"name": "moons", "noise": -1}}, "dataset.noise", "greater than or equal to 0"),
    ({"dataset": {"name": "moons", "colour": "red"}}, "dataset.colour", "Extra inputs"),
    ({"dataset": {"name": "mons"}}, "dataset.name", "'moons'"),
    ({"dataset": {"name": "blobs", "n_samples": 100000, "n_features": 100}}, "dataset.n_features",
     "over the limit"),
    ({"dataset": "mons"}, "dataset", "no dataset 'mons'"),
    ({"data": {"validation_dataset": "ds_x"}, "training": {"validation_split": 0.2}}, "data",
     "validation_split to 0"),
    ({"data": {"validation_dataset": "ds_missing"}}, "data.validation_dataset", "no dataset"),
    ({"data": {"targets": "one_hot"}, "loss": {"type": "nll"}}, "data.targets", "class indices only"),
    ({"data": {"standardise": True}}, "data.standardise", "Extra inputs"),
]


@pytest.mark.services
@pytest.mark.parametrize("change,field,words", BAD, ids=[b[1] + "-" + b[2] for b in BAD])
def test_bad_dataset_choices_are_422_naming_the_field(api, change, field, words):
    before = dataset_count(api)
    spec = {**spec_for("iris"), **change}
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 422, r.text
    assert words in errors_for(r)[field]
    assert dataset_count(api) == before


def test_validation_dataset_of_another_shape_is_refused(api):
    x, y = blobs(40)
    other = upload_npz(api, np.zeros((10, 3), np.float32), np.zeros(10, np.int64))
    r = api.post("/v1/jobs", json=spec_for(upload_npz(api, x, y)["id"],
                                           data={"validation_dataset": other["id"]}))
    assert r.status_code == 422
    assert "[3]" in errors_for(r)["data.validation_dataset"]
