"""cross_entropy with class-probability targets (issue 17), through the API: one-hot or soft
label rows from an .npz or CSV upload, from inline JSON, and made by data.targets one_hot;
the pre-flight's refusals for them name the field that fixes them."""
import numpy as np
import pytest

from tests.e2e.helpers import blobs, errors_for, mlp_spec, upload_npz


def soft_labels(y: np.ndarray, k: int = 3) -> np.ndarray:
    """Each label as a soft row: 0.8 on the label, the rest shared by the other classes."""
    rows = np.full((len(y), k), 0.2 / (k - 1), dtype=np.float32)
    rows[np.arange(len(y)), y] = 0.8
    return rows


def npz_soft(api) -> str:
    x, y = blobs(60)
    return upload_npz(api, x, soft_labels(y))["id"]


def csv_soft(api) -> str:
    x, y = blobs(60)
    p = soft_labels(y)
    lines = ["a,b,c,d,p0,p1,p2"] + [",".join(f"{v:.6f}" for v in [*row, *probs]) for row, probs in zip(x, p)]
    r = api.post("/v1/datasets", files={"file": ("soft.csv", "\n".join(lines).encode())}, data={"target": "p0,p1,p2"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def inline_one_hot(api) -> str:
    x, y = blobs(60)
    r = api.post("/v1/datasets", json={"x": x.tolist(), "y": np.eye(3, dtype=int)[y].tolist()})
    assert r.status_code == 201, r.text
    assert r.json()["target_shape"] == [3] and r.json()["target_kind"] == "integer"  # whole numbers
    return r.json()["id"]


def labels(api) -> str:
    return upload_npz(api, *blobs(60))["id"]


FORMS = {  # how the probability rows reach the job: (the dataset, the spec's data options)
    "npz_soft_labels": (npz_soft, {}),
    "csv_soft_labels": (csv_soft, {}),
    "inline_one_hot_rows": (inline_one_hot, {}),
    "data_targets_one_hot": (labels, {"targets": "one_hot"}),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_each_form_passes_the_dry_run_and_is_queued(api, form):
    make, data = FORMS[form]
    spec = {**mlp_spec(make(api)), "data": data}
    dry = api.post("/v1/jobs", json=spec, params={"dry_run": "true"})
    assert dry.status_code == 200, dry.text
    assert dry.json()["layers"][-1]["output_shape"] == [3] and dry.json()["warnings"] == []
    created = api.post("/v1/jobs", json=spec)
    assert created.status_code == 202, created.text


@pytest.mark.parametrize("form", list(FORMS))
def test_a_width_other_than_the_outputs_names_the_layers_with_both_numbers(api, form):
    make, data = FORMS[form]
    spec = {**mlp_spec(make(api)), "data": data}
    spec["model"]["layers"][-1]["out_features"] = 2
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 422, r.text
    message = errors_for(r)["model.layers"]
    assert "3 columns" in message and "needs 3 outputs" in message and "gives 2" in message


def test_nll_refuses_probability_rows_and_says_what_to_use(api):
    spec = mlp_spec(npz_soft(api))
    spec["model"]["layers"].append({"type": "log_softmax"})
    spec["loss"] = {"type": "nll"}
    r = api.post("/v1/jobs", json=spec)
    assert r.status_code == 422, r.text
    message = errors_for(r)["loss.type"]
    assert "use cross_entropy for probability rows" in message and "mse or l1" not in message
    spec = {**mlp_spec(labels(api)), "loss": {"type": "nll"}, "data": {"targets": "one_hot"}}
    spec["model"]["layers"].append({"type": "log_softmax"})
    r = api.post("/v1/jobs", json=spec)
    assert "cross_entropy" in errors_for(r)["data.targets"]


def test_negative_targets_and_class_weights_of_another_length(api):
    x, y = blobs(60)
    rows = soft_labels(y)
    rows[5] = [-0.1, 0.6, 0.5]
    r = api.post("/v1/jobs", json=mlp_spec(upload_npz(api, x, rows)["id"]))
    assert r.status_code == 422 and "-0.1" in errors_for(r)["dataset"]
    spec = {**mlp_spec(npz_soft(api)), "loss": {"type": "cross_entropy", "weight": [1.0, 2.0]}}
    assert "2 class weights for 3 classes" in errors_for(api.post("/v1/jobs", json=spec))["loss.weight"]


def test_rows_summing_over_1_are_a_warning_in_the_dry_run(api):
    x, y = blobs(60)
    counts = np.eye(3, dtype=np.float32)[y] * 2.5  # counts, not probabilities: PyTorch trains on them
    dry = api.post("/v1/jobs", json=mlp_spec(upload_npz(api, x, counts)["id"]), params={"dry_run": "true"})
    assert dry.status_code == 200, dry.text
    assert [w for w in dry.json()["warnings"] if w.startswith("target rows should sum to 1") and "2.5" in w]


def test_soft_labels_validate_on_one_hot_rows_sent_as_whole_numbers(api):
    spec = {**mlp_spec(npz_soft(api)), "data": {"validation_dataset": inline_one_hot(api)}}
    spec["training"]["validation_split"] = 0.0
    r = api.post("/v1/jobs", json=spec, params={"dry_run": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["validation_rows"] == 60


def test_val_accuracy_stays_an_objective_and_a_monitor_for_probability_rows(api):
    base = mlp_spec(npz_soft(api))
    r = api.post("/v1/studies", json={"base": base, "seeds": [1, 2],
                                      "objective": {"metric": "val_accuracy", "target": 0.9}})
    assert r.status_code == 201, r.text
    spec = {**base, "regularization": {"early_stopping": {"monitor": "val_accuracy", "patience": 2}}}
    assert api.post("/v1/jobs", json=spec, params={"dry_run": "true"}).status_code == 200
