"""Data options (JobSpec.data): standardize, one-hot targets, a separate validation dataset."""
import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from app.datasets.job_data import JobData, plan
from app.ml.check import DatasetInfo, check_targets
from app.ml.preprocessing import apply_preprocessing, fit_preprocessing, one_hot
from app.ml.errors import DataError, SpecError
from app.ml.spec import JobSpec
from app.models import Dataset
from tests.ml.test_shapes_check import BIG
from worker.training.data import job_preprocessing, prepare_data

CPU = torch.device("cpu")


def job(loss="cross_entropy", outputs=3, data=None, **training) -> JobSpec:
    return JobSpec.model_validate({
        "dataset": "ds_train", "model": {"layers": [{"type": "linear", "out_features": outputs}]},
        "loss": {"type": loss}, "optimizer": {"type": "sgd"}, "training": training, "data": data or {},
    })


def rows(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [5.0, -20.0, 0.0]).astype(np.float32)
    x[:, 2] = 0.25  # a constant feature
    return x, rng.integers(0, 3, n).astype(np.int64)


# ---- standardize --------------------------------------------------------------------

def test_statistics_come_from_the_training_rows_only():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [1000.0, -7.0]], dtype=np.float32)
    pre = fit_preprocessing(x, np.zeros(3, np.int64), np.array([0, 1]), standardize=True, targets="index")
    # By hand over rows 0 and 1: mean (2, 5); population std (1, 0), and a zero std becomes 1.
    assert pre["standardize"] == {"mean": [2.0, 5.0], "std": [1.0, 1.0]}
    out = apply_preprocessing(x, pre)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[-1.0, 0.0], [1.0, 0.0], [998.0, -12.0]])


def test_statistics_are_float64_of_the_float32_rows():
    x, y = rows()
    train = np.arange(0, 40, 2)
    pre = fit_preprocessing(x, y, train, standardize=True, targets="index")
    xt = x[train].astype(np.float64)
    by_hand_std = np.sqrt(((xt - xt.sum(axis=0) / len(xt)) ** 2).sum(axis=0) / len(xt))
    np.testing.assert_allclose(pre["standardize"]["mean"], xt.sum(axis=0) / len(xt), rtol=1e-12)
    np.testing.assert_allclose(pre["standardize"]["std"][:2], by_hand_std[:2], rtol=1e-12)
    assert pre["standardize"]["std"][2] == 1.0  # the constant feature is only centred
    assert pre["feature_shape"] == [3] and pre["targets"] == "index" and pre["num_classes"] is None


def test_images_get_one_mean_and_std_per_pixel():
    x = np.random.default_rng(1).normal(size=(10, 1, 2, 2)).astype(np.float32)
    pre = fit_preprocessing(x, np.zeros(10, np.int64), np.arange(10), standardize=True, targets="index")
    assert np.asarray(pre["standardize"]["mean"]).shape == (1, 2, 2)
    out = apply_preprocessing(x, pre)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-5)


def test_preprocessing_survives_json_bit_for_bit():
    x, y = rows()
    pre = fit_preprocessing(x, y, np.arange(30), standardize=True, targets="index")
    again = json.loads(json.dumps(pre))
    assert np.array_equal(apply_preprocessing(x, again), apply_preprocessing(x, pre))


def test_without_standardize_inputs_are_only_float32():
    x, y = rows()
    pre = fit_preprocessing(x, y, np.arange(40), standardize=False, targets="index")
    assert pre["standardize"] is None
    out = apply_preprocessing(x.astype(np.float64).tolist(), pre)
    assert out.dtype == np.float32 and np.array_equal(out, x)


def test_apply_refuses_rows_of_another_shape():
    pre = fit_preprocessing(*rows(), np.arange(40), standardize=True, targets="index")
    with pytest.raises(DataError) as info:
        apply_preprocessing(np.zeros((2, 4)), pre)
    assert info.value.field == "x" and "[3]" in info.value.message


# ---- one-hot --------------------------------------------------------------------------

def test_one_hot_rows():
    np.testing.assert_array_equal(one_hot(np.array([2, 0, 1, 2]), 3),
                                  [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert one_hot(np.array([1]), 4).dtype == np.float32


@pytest.mark.parametrize("labels", [np.array([0, 3]), np.array([-1, 0]), np.array([0.0, 1.0])])
def test_one_hot_refuses_labels_outside_its_width(labels):
    with pytest.raises(DataError):
        one_hot(labels, 3)


def test_one_hot_width_is_the_largest_label_plus_one():
    pre = fit_preprocessing(*rows(), np.arange(40), standardize=False, targets="one_hot")
    assert pre["num_classes"] == 3
    with pytest.raises(DataError) as info:
        fit_preprocessing(np.zeros((2, 1), np.float32), np.array([0.5, 1.0], np.float32), np.arange(2),
                          standardize=False, targets="one_hot")
    assert info.value.field == "data.targets"


def labels_info(k=3, rows=50, lo=0) -> DatasetInfo:
    return DatasetInfo(rows=rows, feature_shape=(4,), target_shape=(), target_kind="integer",
                       target_min=lo, target_max=k - 1, targets="one_hot")


@pytest.mark.parametrize("loss", ["mse", "l1", "bce_with_logits", "cross_entropy"])
def test_preflight_takes_one_hot_labels_for_elementwise_losses_and_cross_entropy(loss):
    check_targets(job(loss).loss, (3,), labels_info())


@pytest.mark.parametrize("info,loss,out,field,words", [
    (labels_info(), "mse", (1,), "model.layers", "(batch, 3)"),
    (labels_info(), "nll", (3,), "data.targets", "nll takes class indices only: use targets: index, or "
     "cross_entropy"),
    (labels_info(), "cross_entropy", (4,), "model.layers", "one_hot makes 3 columns (labels 0..2), so "
     "cross_entropy needs 3 outputs, but the last layer gives 4; or use targets: index"),
    (labels_info(lo=-1), "mse", (3,), "data.targets", "from 0 up"),
    (DatasetInfo(50, (4,), (), "float", 0.0, 1.0, targets="one_hot"), "mse", (2,), "data.targets",
     "integer class label"),
    (DatasetInfo(50, (4,), (2,), "integer", 0, 1, targets="one_hot"), "mse", (2,), "data.targets",
     "shape (batch, 2)"),
    (labels_info(k=10**6, rows=1000), "mse", (10**6,), "data.targets", "over the limit"),
])
def test_preflight_refuses_one_hot_that_cannot_train(info, loss, out, field, words):
    with pytest.raises(SpecError) as exc:
        check_targets(job(loss).loss, out, info)
    assert exc.value.field == field and words in exc.value.message


# ---- prepare_data: the trainer's side ----------------------------------------------------

def test_prepare_data_standardizes_with_the_training_split():
    x, y = rows()
    spec = job(data={"standardize": True}, validation_split=0.25, seed=4)
    split = prepare_data(spec, x, y, torch.Generator().manual_seed(4), CPU)
    assert len(split.x_train) == 30 and len(split.x_val) == 10
    np.testing.assert_allclose(split.x_train[:, :2].double().mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(split.x_train[:, :2].double().std(0, unbiased=False), 1, atol=1e-6)
    assert torch.all(split.x_train[:, 2] == 0)
    # The validation rows are scaled with the training statistics, not their own.
    assert not np.allclose(split.x_val[:, :2].double().mean(0), 0, atol=1e-3)
    # The worker saves what prepare_data fitted, recomputed from the seed.
    assert job_preprocessing(spec, x, y) == split.preprocessing


def test_prepare_data_one_hot_for_mse():
    x, y = rows()
    split = prepare_data(job("mse", data={"targets": "one_hot"}), x, y, torch.Generator(), CPU)
    assert split.y_train.dtype == torch.float32 and split.y_train.shape == (40, 3)
    assert torch.equal(split.y_train.argmax(1), torch.as_tensor(y))


def test_prepare_data_with_a_separate_validation_dataset():
    x, y = rows()
    xv, yv = rows(12, seed=9)
    spec = job(data={"standardize": True, "validation_dataset": "ds_val"})
    split = prepare_data(spec, x, y, torch.Generator().manual_seed(0), CPU, (xv, yv))
    assert len(split.x_train) == 40 and len(split.x_val) == 12  # every training row trains
    assert torch.equal(split.x_val, torch.as_tensor(apply_preprocessing(xv, split.preprocessing)))
    assert torch.equal(split.y_val, torch.as_tensor(yv))


def test_prepare_data_refuses_a_validation_dataset_that_does_not_fit():
    x, y = rows()
    spec = job("mse", data={"targets": "one_hot", "validation_dataset": "ds_val"})
    with pytest.raises(DataError) as info:
        prepare_data(spec, x, y, torch.Generator(), CPU, (np.zeros((2, 5), np.float32), np.zeros(2, np.int64)))
    assert info.value.field == "data.validation_dataset"
    with pytest.raises(DataError) as info:
        prepare_data(spec, x, y, torch.Generator(), CPU, (x[:2], np.array([0, 7])))
    assert info.value.field == "data.validation_dataset"


# ---- the spec and the submission check ---------------------------------------------------

def test_validation_dataset_and_validation_split_together_are_refused():
    with pytest.raises(ValidationError) as info:
        job(data={"validation_dataset": "ds_val"}, validation_split=0.2)
    (err,) = info.value.errors()
    assert err["loc"] == ("data",) and "set training.validation_split to 0" in err["msg"]


@pytest.mark.parametrize("data,loc", [
    ({"targets": "onehot"}, ("data", "targets")),
    ({"validation_dataset": "moons"}, ("data", "validation_dataset")),
    ({"validation_dataset": {"name": "moons"}}, ("data", "validation_dataset")),
    ({"scale": True}, ("data", "scale")),
])
def test_bad_data_options_name_the_field(data, loc):
    with pytest.raises(ValidationError) as info:
        job(data=data)
    assert [e["loc"] for e in info.value.errors()] == [loc]


def row(rows=50, features=(4,), kind="integer", lo=0, hi=2, target_shape=(), classes=None) -> Dataset:
    return Dataset(id="ds_x", rows=rows, feature_shape=list(features), target_shape=list(target_shape),
                   target_kind=kind, target_min=lo, target_max=hi, classes=classes)


def test_plan_counts_the_validation_dataset_rows():
    p = plan(job(data={"validation_dataset": "ds_val"}), JobData(row(), row(rows=17)), BIG)
    assert (p.train_rows, p.validation_rows) == (50, 17)


@pytest.mark.parametrize("spec,val,words", [
    (job(), row(features=(5,)), "rows of shape [5]"),
    (job(), row(kind="float"), "float targets"),
    (job(), row(hi=5), "labels run from 0 to 5"),
    (job("mse", data={"targets": "one_hot"}), row(hi=3), "3 classes"),
])
def test_plan_refuses_a_validation_dataset_unlike_the_training_one(spec, val, words):
    spec = spec.model_copy(update={"data": spec.data.model_copy(update={"validation_dataset": "ds_v"})})
    with pytest.raises(SpecError) as info:
        plan(spec, JobData(row(), val), BIG)
    assert info.value.field == "data.validation_dataset" and words in info.value.message


def test_plan_refuses_other_text_labels_in_the_validation_dataset():
    spec = job(data={"validation_dataset": "ds_v"})
    with pytest.raises(SpecError) as info:
        plan(spec, JobData(row(classes=["a", "b", "c"]), row(hi=1, classes=["a", "c"])), BIG)
    assert "['a', 'c']" in info.value.message
    plan(spec, JobData(row(classes=[0, 1, 2]), row(hi=1, classes=[0, 1])), BIG)  # numbers are numbers


def test_a_validation_dataset_counts_as_a_validation_set_for_monitors():
    spec = JobSpec.model_validate({
        "dataset": "ds_train", "model": {"layers": [{"type": "linear", "out_features": 3}]},
        "loss": {"type": "cross_entropy"}, "optimizer": {"type": "sgd"},
        "regularization": {"early_stopping": {"monitor": "val_loss", "patience": 3}},
        "data": {"validation_dataset": "ds_val"}})
    plan(spec, JobData(row(), row(rows=17)), BIG)
