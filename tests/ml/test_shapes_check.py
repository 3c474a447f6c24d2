"""Pre-flight of shapes, layer rules and limits (app/ml/shapes.py dry_run, app/ml/check.py plan_job);
the targets against the loss: test_targets_check.py."""
import numpy as np
import pytest
import torch

from app.ml import spec as S
from app.ml.check import DatasetInfo, Limits, plan_job
from app.ml.errors import SpecError
from app.ml.shapes import dry_run

BIG = Limits(max_parameters=10**9, max_epochs=10**6, max_steps=10**9, max_layers=1000)

MLP = [{"type": "linear", "out_features": 16}, {"type": "relu"},
       {"type": "linear", "out_features": 3}]


def spec(layers=None, loss="cross_entropy", **training) -> S.JobSpec:
    return S.JobSpec.model_validate({
        "dataset": "ds", "model": {"layers": layers or MLP}, "loss": {"type": loss},
        "optimizer": {"type": "sgd"}, "training": training,
    })


def classes(rows=100, features=(4,), k=3) -> DatasetInfo:
    return DatasetInfo(rows=rows, feature_shape=features, target_shape=(), target_kind="integer",
                       target_min=0, target_max=k - 1)


def regression(rows=100, features=(4,), target_shape=(), lo=-3.0, hi=5.0) -> DatasetInfo:
    return DatasetInfo(rows=rows, feature_shape=features, target_shape=target_shape,
                       target_kind="float", target_min=lo, target_max=hi)


def spec_error(fn, *args) -> SpecError:
    with pytest.raises(SpecError) as info:
        fn(*args)
    assert str(info.value) == f"{info.value.field}: {info.value.message}"
    return info.value


# ---- shapes and parameter counts --------------------------------------------------

def test_mlp_plan_reports_shapes_and_parameters():
    plan = plan_job(spec(), classes(), BIG)
    assert [(r.index, r.type, r.input_shape, r.output_shape, r.parameters) for r in plan.layers] == [
        (0, "linear", (4,), (16,), 4 * 16 + 16),
        (1, "relu", (16,), (16,), 0),
        (2, "linear", (16,), (3,), 16 * 3 + 3),
    ]
    assert plan.parameter_count == 80 + 51
    assert plan.output_shape == (3,)
    assert plan.warnings == []


def test_parameter_count_without_bias_and_with_batchnorm():
    layers = [{"type": "linear", "out_features": 8, "bias": False}, {"type": "batchnorm1d"},
              {"type": "batchnorm1d", "affine": False}, {"type": "linear", "out_features": 1}]
    plan = plan_job(spec(layers, loss="mse"), regression(features=(5,)), BIG)
    # running stats are buffers, not parameters
    assert [r.parameters for r in plan.layers] == [40, 16, 0, 9]
    assert plan.parameter_count == 65


def test_dry_run_on_multi_dim_features():
    layers = [{"type": "linear", "out_features": 6}, {"type": "batchnorm1d"}, {"type": "flatten"},
              {"type": "linear", "out_features": 2}]
    model = S.ModelSpec.model_validate({"layers": layers})
    reports = dry_run(model, (3, 5))
    assert [r.input_shape for r in reports] == [(3, 5), (3, 6), (3, 6), (18,)]
    assert [r.output_shape for r in reports] == [(3, 6), (3, 6), (18,), (2,)]
    assert [r.parameters for r in reports] == [36, 6, 0, 38]


def test_plan_row_and_step_arithmetic():
    plan = plan_job(spec(epochs=7, batch_size=32, validation_split=0.2), classes(rows=100), BIG)
    assert (plan.train_rows, plan.validation_rows) == (80, 20)
    assert (plan.batch_size, plan.steps_per_epoch, plan.total_steps) == (32, 3, 21)


def test_full_batch_is_one_step_per_epoch():
    plan = plan_job(spec(epochs=5, batch_size="full", validation_split=0.1), classes(rows=1000), BIG)
    assert plan.batch_size == plan.train_rows == 900
    assert plan.steps_per_epoch == 1 and plan.total_steps == 5
    assert plan.warnings == []


def test_batch_size_one_is_one_step_per_row():
    plan = plan_job(spec(epochs=2, batch_size=1), classes(rows=13), BIG)
    assert (plan.steps_per_epoch, plan.total_steps) == (13, 26)


# ---- targets --------------------------------------------------------------------

# ---- layer input rules -------------------------------------------------------------

@pytest.mark.parametrize("features, bad_index, layers", [
    ((2, 3, 4), 0, [{"type": "batchnorm1d"}, {"type": "flatten"}, {"type": "linear", "out_features": 1}]),
    ((2, 3, 4), 1, [{"type": "linear", "out_features": 5}, {"type": "batchnorm1d"}]),
])
def test_batchnorm1d_on_4d_input_names_the_layer(features, bad_index, layers):
    err = spec_error(plan_job, spec(layers, loss="mse"), regression(features=features), BIG)
    assert err.field == f"model.layers[{bad_index}]"
    # the plain message from the pre-check, not torch's own error text
    assert err.message.startswith("batchnorm1d expects 2-D (batch, features) or 3-D")
    assert "(batch, 2, 3" in err.message


@pytest.mark.parametrize("features, flatten", [
    ((5,), {"start_dim": 2}),
    ((2, 3), {"start_dim": 1, "end_dim": 3}),
    ((2, 3), {"start_dim": 1, "end_dim": -4}),
])
def test_flatten_out_of_range_names_the_layer(features, flatten):
    layers = [{"type": "relu"}, {"type": "flatten", **flatten}, {"type": "linear", "out_features": 1}]
    err = spec_error(plan_job, spec(layers, loss="mse"), regression(features=features), BIG)
    assert err.field == "model.layers[1]"
    assert err.message.startswith("flatten dims") and "out of range" in err.message


def test_flatten_with_start_after_end_is_a_spec_error():
    layers = [{"type": "flatten", "start_dim": 2, "end_dim": 1}]
    err = spec_error(plan_job, spec(layers, loss="mse"), regression(features=(2, 3, 4)), BIG)
    assert err.field == "model.layers[0]"


def test_softmax_dim_out_of_range_names_the_layer():
    layers = [{"type": "linear", "out_features": 3}, {"type": "softmax", "dim": 2}]
    err = spec_error(plan_job, spec(layers), classes(), BIG)
    assert err.field == "model.layers[1]" and "softmax" in err.message


def test_cnn_plan_on_image_data_reports_every_layer():
    layers = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": "same"}, {"type": "relu"},
              {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"},
              {"type": "linear", "out_features": 3}]
    plan = plan_job(spec(layers), classes(features=(1, 8, 8)), BIG)
    assert [r.output_shape for r in plan.layers] == [(4, 8, 8), (4, 8, 8), (4, 4, 4), (64,), (3,)]
    assert plan.parameter_count == (9 * 4 + 4) + (64 * 3 + 3)


def test_shape_error_inside_a_residual_block_reaches_the_plan_with_its_path():
    layers = [{"type": "linear", "out_features": 8},
              {"type": "residual", "layers": [{"type": "relu"}, {"type": "lstm", "hidden_size": 4}]},
              {"type": "linear", "out_features": 3}]
    err = spec_error(plan_job, spec(layers), classes(), BIG)
    assert err.field == "model.layers[1].layers[1]"
    assert "lstm expects 3-D input (batch, seq, features), got (batch, 8)" in err.message


# ---- limits ---------------------------------------------------------------------

def limits(**over) -> Limits:
    base = dict(max_parameters=10**9, max_epochs=10**6, max_steps=10**9, max_layers=1000)
    base.update(over)
    return Limits(**base)


def test_parameter_limit():
    assert plan_job(spec(), classes(), limits(max_parameters=131)).parameter_count == 131
    err = spec_error(plan_job, spec(), classes(), limits(max_parameters=130))
    # named down to the size of the layer holding most of them (issue 14: "model.layers" alone
    # left the client to guess which)
    assert err.field == "model.layers[0].out_features"
    assert "131 parameters" in err.message and "limit of 130" in err.message
    assert "in this linear layer" in err.message


def test_epoch_limit():
    plan_job(spec(epochs=50), classes(), limits(max_epochs=50))
    err = spec_error(plan_job, spec(epochs=51), classes(), limits(max_epochs=50))
    assert err.field == "training.epochs"
    assert "51" in err.message and "limit of 50" in err.message


def test_step_limit():
    # 100 rows, batch 10: 10 steps per epoch; 12 epochs is 120 steps
    plan_job(spec(epochs=12, batch_size=10), classes(), limits(max_steps=120))
    err = spec_error(plan_job, spec(epochs=12, batch_size=10), classes(), limits(max_steps=119))
    assert err.field == "training.epochs"
    assert "120 steps" in err.message and "limit of 119" in err.message


def test_layer_limit():
    plan_job(spec(), classes(), limits(max_layers=3))
    err = spec_error(plan_job, spec(), classes(), limits(max_layers=2))
    assert err.field == "model.layers"
    assert "3 layers" in err.message and "limit of 2" in err.message


# ---- rows and batches --------------------------------------------------------------

def test_validation_split_leaving_no_validation_rows():
    err = spec_error(plan_job, spec(validation_split=0.1), classes(rows=9), BIG)
    assert err.field == "training.validation_split"
    plan = plan_job(spec(validation_split=0.1), classes(rows=10), BIG)
    assert (plan.train_rows, plan.validation_rows) == (9, 1)


@pytest.mark.parametrize("rows, batch_size, split", [
    (9, 4, 0.0),     # 4 + 4 + 1
    (10, 4, 0.1),    # 9 training rows: 4 + 4 + 1
    (5, 1, 0.0),     # every batch is one row
    (1, 8, 0.0),     # one training row
    (3, 2, 0.0),     # 2 + 1
])
def test_batchnorm_with_a_trailing_batch_of_one(rows, batch_size, split):
    layers = [{"type": "linear", "out_features": 4}, {"type": "batchnorm1d"},
              {"type": "linear", "out_features": 3}]
    err = spec_error(plan_job, spec(layers, batch_size=batch_size, validation_split=split),
                     classes(rows=rows), BIG)
    assert err.field == "training.batch_size"


@pytest.mark.parametrize("rows, batch_size", [(10, 4), (8, 4), (9, "full"), (2, 2), (9, 3)])
def test_batchnorm_with_no_batch_of_one(rows, batch_size):
    layers = [{"type": "linear", "out_features": 4}, {"type": "batchnorm1d"},
              {"type": "linear", "out_features": 3}]
    plan_job(spec(layers, batch_size=batch_size), classes(rows=rows), BIG)


def test_trailing_batch_of_one_without_batchnorm_is_fine():
    plan = plan_job(spec(batch_size=4), classes(rows=9), BIG)
    assert plan.steps_per_epoch == 3


# ---- warnings -------------------------------------------------------------------

def test_warns_on_softmax_before_cross_entropy():
    plan = plan_job(spec(MLP + [{"type": "softmax"}]), classes(), BIG)
    assert len(plan.warnings) == 1 and "softmax" in plan.warnings[0]
    # softmax with another loss is a modelling choice, not a mistake to warn about
    one = [{"type": "linear", "out_features": 1}, {"type": "softmax"}]
    assert plan_job(spec(one, loss="mse"), regression(), BIG).warnings == []


def test_warns_when_batch_size_exceeds_rows():
    plan = plan_job(spec(batch_size=64, validation_split=0.5), classes(rows=100), BIG)
    assert len(plan.warnings) == 1
    assert "batch_size 64" in plan.warnings[0] and "50 training rows" in plan.warnings[0]
    assert (plan.batch_size, plan.steps_per_epoch) == (50, 1)
    assert plan_job(spec(batch_size=50, validation_split=0.5), classes(rows=100), BIG).warnings == []


# ---- the plan is what the trainer does -----------------------------------------------

@pytest.mark.parametrize("rows, batch_size, split", [(23, 5, 0.2), (10, "full", 0.0), (7, 3, 0.0)])
def test_plan_steps_equal_the_trainers_steps(rows, batch_size, split):
    from worker.training import Hooks, train

    job = spec(epochs=2, batch_size=batch_size, validation_split=split, log_every_steps=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 4)).astype(np.float32)
    y = rng.integers(0, 3, rows).astype(np.int64)
    plan = plan_job(job, DatasetInfo(rows, (4,), (), "integer", int(y.min()), int(y.max())), BIG)
    points = []
    train(job, x, y, torch.device("cpu"),
          Hooks(flush=lambda p, epoch, step: points.extend(p), flush_seconds=0.0))
    steps = [p["step"] for p in points if p["kind"] == "step"]
    assert steps == list(range(1, plan.total_steps + 1))
    epochs = [p for p in points if p["kind"] == "epoch"]
    assert [p["step"] for p in epochs] == [plan.steps_per_epoch, 2 * plan.steps_per_epoch]
    assert all(("val_loss" in p) == (plan.validation_rows > 0) for p in epochs)


@pytest.mark.parametrize("dim", [0, -2])
def test_softmax_over_the_batch_is_refused(dim):
    from app.ml.errors import SpecError
    from app.ml.shapes import dry_run
    from app.ml.spec import ModelSpec

    model = ModelSpec.model_validate({"layers": [{"type": "linear", "out_features": 3},
                                                 {"type": "softmax", "dim": dim}]})
    with pytest.raises(SpecError) as info:
        dry_run(model, (4,))
    assert info.value.field == "model.layers[1]" and "dim 0" in info.value.message
