"""Builtin datasets (app/ml/builtin_datasets.py loaders, app/ml/data_spec.py parameters)."""
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from app.datasets.service import builtin_catalog
from app.ml import builtin_datasets as builtin
from app.ml.data_spec import BUILTIN_SPECS, MAX_BUILTIN_VALUES
from app.ml.spec import JobSpec

DOCS = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"
BUNDLED = ("iris", "digits", "wine", "breast_cancer", "diabetes")
GENERATED = tuple(n for n in BUILTIN_SPECS if n not in BUNDLED)

# Non-default parameters, to see the shapes follow them.
OTHER = {
    "moons": {"n_samples": 37, "noise": 0.0, "seed": 5},
    "circles": {"n_samples": 41, "noise": 0.2, "factor": 0.3, "seed": 5},
    "xor": {"n_samples": 43, "noise": 0.0, "seed": 5},
    "spirals": {"n_samples": 45, "n_classes": 4, "turns": 2.5, "noise": 0.0, "seed": 5},
    "blobs": {"n_samples": 47, "centers": 5, "n_features": 7, "cluster_std": 0.5, "seed": 5},
    "regression": {"n_samples": 49, "n_features": 6, "n_informative": 2, "n_targets": 3, "noise": 0.0,
                   "seed": 5},
    "sine_sequence": {"n_samples": 51, "seq_len": 7, "period": 9.0, "noise": 0.0, "seed": 5},
}


def ref(name, **params):
    """The validated dataset field of a job spec."""
    return JobSpec.model_validate({
        "dataset": {"name": name, **params}, "model": {"layers": [{"type": "linear", "out_features": 1}]},
        "loss": {"type": "mse"}, "optimizer": {"type": "sgd"},
    }).dataset


def dataset_errors(value) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"dataset": value, "model": {"layers": [{"type": "relu"}]},
                                "loss": {"type": "mse"}, "optimizer": {"type": "sgd"}})
    return info.value.errors()


def assert_matches_shapes(name: str, params: dict) -> None:
    data, want = builtin.load(name, **params), builtin.shapes(name, **params)
    assert data.x.dtype == np.float32 and data.x.flags.c_contiguous
    assert data.x.shape == (want.rows, *want.feature_shape)
    assert data.y.shape == (want.rows, *want.target_shape)
    assert np.isfinite(data.x).all()
    if want.target_kind == "integer":
        assert data.y.dtype == np.int64 and data.target_kind == "integer"
        # Every class is present and labels run 0..k-1, as cross_entropy and one_hot need.
        assert sorted(np.unique(data.y).tolist()) == list(range(want.num_classes))
        assert len(data.class_labels()) == want.num_classes
    else:
        assert data.y.dtype == np.float32 and data.target_kind == "float" and want.num_classes is None
        assert np.isfinite(data.y).all()


@pytest.mark.parametrize("name", list(BUILTIN_SPECS))
def test_every_builtin_loads_with_its_documented_shapes_at_the_defaults(name):
    assert_matches_shapes(name, ref(name).params())


@pytest.mark.parametrize("name", GENERATED)
def test_generated_shapes_follow_the_parameters(name):
    assert_matches_shapes(name, ref(name, **OTHER[name]).params())


def test_bundled_datasets_are_sklearns_with_their_labels():
    iris = builtin.load("iris")
    assert iris.x.shape == (150, 4) and iris.classes == ["setosa", "versicolor", "virginica"]
    assert iris.feature_names[0] == "sepal length (cm)"
    digits = builtin.load("digits")
    assert digits.x.shape == (1797, 1, 8, 8) and digits.x.min() == 0 and digits.x.max() == 16
    assert digits.classes == list(range(10))
    assert builtin.load("breast_cancer").classes == ["malignant", "benign"]
    assert builtin.load("wine").x.shape == (178, 13)
    diabetes = builtin.load("diabetes")
    assert diabetes.x.shape == (442, 10) and diabetes.y.dtype == np.float32 and diabetes.classes is None


@pytest.mark.parametrize("name", list(BUILTIN_SPECS))
def test_same_parameters_same_rows(name):
    params = ref(name).params()
    assert builtin.load(name, **params).digest() == builtin.load(name, **params).digest()


@pytest.mark.parametrize("name", GENERATED)
def test_another_seed_gives_other_rows(name):
    params = ref(name).params()
    assert builtin.load(name, **params).digest() != builtin.load(name, **{**params, "seed": 1}).digest()


def test_xor_labels_are_the_xor_of_the_signs():
    d = builtin.load("xor", **OTHER["xor"])
    np.testing.assert_array_equal(d.y, (d.x[:, 0] > 0) ^ (d.x[:, 1] > 0))


def test_sine_sequence_target_is_the_next_value_of_the_wave():
    p = OTHER["sine_sequence"]
    d = builtin.load("sine_sequence", **p)
    assert d.x.shape == (51, 7, 1)
    # A sine obeys s[t+1] = 2 cos(w) s[t] - s[t-1], with w the step in radians.
    w = 2 * np.pi / p["period"]
    series = np.concatenate([d.x[:, :, 0], d.y[:, None]], axis=1).astype(np.float64)
    np.testing.assert_allclose(series[:, 2:], 2 * np.cos(w) * series[:, 1:-1] - series[:, :-2], atol=1e-5)


def test_regression_informative_features_and_targets():
    d = builtin.load("regression", **OTHER["regression"])
    assert d.y.shape == (49, 3)
    # noise 0: the targets are a linear map of the features, through 2 of them only.
    coef, *_ = np.linalg.lstsq(d.x.astype(np.float64), d.y.astype(np.float64), rcond=None)
    np.testing.assert_allclose(d.x @ coef, d.y, atol=1e-3)
    assert (np.abs(coef).max(axis=1) > 1e-3).sum() == 2


def test_a_name_alone_means_every_default():
    assert ref("moons") == JobSpec.model_validate({
        "dataset": "moons", "model": {"layers": [{"type": "relu"}]}, "loss": {"type": "mse"},
        "optimizer": {"type": "sgd"}}).dataset
    assert ref("moons").params() == {"n_samples": 200, "noise": 0.1, "seed": 0}


def test_readable_name_lists_every_parameter():
    assert ref("moons", n_samples=500, noise=0.2, seed=1).label() == "moons(n_samples=500,noise=0.2,seed=1)"
    assert ref("iris").label() == "iris"


BAD = [
    ({"name": "moons", "noise": -1}, ("dataset", "builtin-dataset", "moons", "noise"), "greater than or equal"),
    ({"name": "moons", "n_samples": 1}, ("dataset", "builtin-dataset", "moons", "n_samples"), "greater than"),
    ({"name": "moons", "n_samples": 10**6}, ("dataset", "builtin-dataset", "moons", "n_samples"), "less than"),
    ({"name": "moons", "colour": 1}, ("dataset", "builtin-dataset", "moons", "colour"), "Extra inputs"),
    ({"name": "iris", "seed": 1}, ("dataset", "builtin-dataset", "iris", "seed"), "Extra inputs"),
    ({"name": "circles", "factor": 1.0}, ("dataset", "builtin-dataset", "circles", "factor"), "less than 1"),
    ({"name": "mons"}, ("dataset", "builtin-dataset"), "'moons'"),
    ({"noise": 0.1}, ("dataset", "builtin-dataset"), "discriminator 'name'"),
    ({"name": "regression", "n_features": 3, "n_informative": 4},
     ("dataset", "builtin-dataset", "regression", "n_informative"), "cannot exceed n_features (3)"),
    ({"name": "blobs", "n_samples": 100_000, "n_features": 100},
     ("dataset", "builtin-dataset", "blobs", "n_features"), f"over the limit of {MAX_BUILTIN_VALUES:,}"),
    ({"name": "sine_sequence", "n_samples": 100_000, "seq_len": 1000},
     ("dataset", "builtin-dataset", "sine_sequence", "seq_len"), "n_samples * seq_len = 100,000,000"),
]


@pytest.mark.parametrize("value,loc,words", BAD, ids=[str(b[1][-1]) + "-" + b[2] for b in BAD])
def test_bad_builtin_parameters_name_the_field(value, loc, words):
    errors = dataset_errors(value)
    assert len(errors) == 1, errors
    assert errors[0]["loc"] == loc and words in errors[0]["msg"]


def test_a_string_that_is_no_builtin_is_taken_for_an_id():
    spec = JobSpec.model_validate({"dataset": "ds_abc", "model": {"layers": [{"type": "relu"}]},
                                   "loss": {"type": "mse"}, "optimizer": {"type": "sgd"}})
    assert spec.dataset == "ds_abc"


def test_catalog_lists_every_builtin_with_parameters_and_shapes():
    catalog = {b["name"]: b for b in builtin_catalog()}
    assert list(catalog) == list(BUILTIN_SPECS)
    moons = catalog["moons"]
    assert moons["parameters"]["n_samples"] == {"type": "integer", "default": 200, "minimum": 2,
                                                "maximum": 100_000, "description": "rows to generate"}
    assert moons["defaults"] == {"n_samples": 200, "noise": 0.1, "seed": 0}
    assert (moons["rows"], moons["feature_shape"], moons["target_shape"]) == (200, [2], [])
    assert catalog["digits"]["feature_shape"] == [1, 8, 8] and catalog["digits"]["num_classes"] == 10
    assert catalog["sine_sequence"]["feature_shape"] == [20, 1]
    assert catalog["iris"]["parameters"] == {}
    for name, entry in catalog.items():
        data = builtin.load(name, **entry["defaults"])
        assert [entry["rows"], *entry["feature_shape"]] == list(data.x.shape), name


def test_docs_list_every_builtin_and_parameter():
    text = DOCS.read_text()
    for name, model in BUILTIN_SPECS.items():
        assert f"`{name}`" in text, name
        for param in model.model_fields.keys() - {"name"}:
            assert f"`{param}`" in text, (name, param)
