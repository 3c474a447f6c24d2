"""The JSON contract (app/ml/spec.py): what parses, what is refused, and where pydantic says."""
import typing

import pytest
import torch
from pydantic import ValidationError

from app.ml import spec as S
from app.ml.layers import specs as L
from app.ml.optim.conjugate_gradient import ConjugateGradient
from app.ml.optim.levenberg_marquardt import LevenbergMarquardt
from app.ml.optim.newton import Newton
from app.ml.optim.scaled_conjugate_gradient import ScaledConjugateGradient


def job(**over):
    body = {
        "dataset": "ds_1",
        "model": {"layers": [
            {"type": "linear", "out_features": 16},
            {"type": "relu"},
            {"type": "dropout", "p": 0.25},
            {"type": "linear", "out_features": 3, "bias": False},
        ]},
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "adam", "lr": 0.01, "betas": [0.8, 0.99]},
        "training": {"epochs": 5, "batch_size": 8, "validation_split": 0.2, "seed": 7},
    }
    body.update(over)
    return body


def errors_of(model, body) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    return info.value.errors()


def only_error(model, body) -> dict:
    errs = errors_of(model, body)
    assert len(errs) == 1, errs
    return errs[0]


# ---- valid specs ----------------------------------------------------------------

def test_valid_job_parses_into_typed_models():
    spec = S.JobSpec.model_validate(job())
    assert spec.dataset == "ds_1"
    assert [type(l) for l in spec.model.layers] == [L.Linear, L.ReLU, L.Dropout, L.Linear]
    assert spec.model.layers[0].out_features == 16 and spec.model.layers[0].bias is True
    assert spec.model.layers[3].bias is False
    assert spec.model.layers[2].p == 0.25
    assert spec.loss.type == "cross_entropy" and spec.loss.label_smoothing == 0
    assert isinstance(spec.optimizer, S.Adam)
    assert spec.optimizer.lr == 0.01 and tuple(spec.optimizer.betas) == (0.8, 0.99)
    assert spec.optimizer.eps == 1e-8 and spec.optimizer.amsgrad is False
    t = spec.training
    assert (t.epochs, t.batch_size, t.validation_split, t.seed) == (5, 8, 0.2, 7)
    assert (t.shuffle, t.log_every_steps, t.device) == (True, 10, "auto")


def test_training_is_optional_with_documented_defaults():
    body = job()
    del body["training"]
    t = S.JobSpec.model_validate(body).training
    assert (t.epochs, t.batch_size, t.shuffle, t.validation_split, t.seed, t.device) == (
        10, 32, True, 0.0, 0, "auto")


def test_json_round_trip_is_identity():
    spec = S.JobSpec.model_validate(job())
    again = S.JobSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    assert again.model_dump(mode="json") == spec.model_dump(mode="json")


@pytest.mark.parametrize("layer, cls", [
    ({"type": "linear", "out_features": 1}, L.Linear),
    ({"type": "relu"}, L.ReLU),
    ({"type": "sigmoid"}, L.Sigmoid),
    ({"type": "tanh"}, L.Tanh),
    ({"type": "leaky_relu", "negative_slope": 0.2}, L.LeakyReLU),
    ({"type": "softmax", "dim": 1}, L.Softmax),
    ({"type": "identity"}, L.Identity),
    ({"type": "dropout", "p": 0.0}, L.Dropout),
    ({"type": "batchnorm1d", "eps": 1e-3, "momentum": 1.0, "affine": False}, L.BatchNorm1d),
    ({"type": "flatten", "start_dim": 2, "end_dim": 3}, L.Flatten),
])
def test_every_layer_type_is_dispatched_by_its_tag(layer, cls):
    parsed = S.ModelSpec.model_validate({"layers": [layer]}).layers[0]
    assert type(parsed) is cls
    assert parsed.model_dump() == {**parsed.model_dump(), **layer}


# ---- refused specs: where pydantic says the problem is ----------------------------

def test_unknown_layer_type_names_the_layer():
    body = job()
    body["model"]["layers"][1] = {"type": "conv9d", "out_channels": 4}
    err = only_error(S.JobSpec, body)
    assert err["type"] == "union_tag_invalid"
    assert err["loc"] == ("model", "layers", 1)
    assert "conv9d" in err["msg"] or err["ctx"]["tag"] == "conv9d"


def test_layer_without_type_is_refused():
    err = only_error(S.ModelSpec, {"layers": [{"out_features": 3}]})
    assert err["type"] == "union_tag_not_found"
    assert err["loc"] == ("layers", 0)


@pytest.mark.parametrize("bad", [0, -1, -100])
def test_non_positive_out_features_is_refused_at_its_index(bad):
    layers = [{"type": "relu"}, {"type": "relu"}, {"type": "relu"},
              {"type": "linear", "out_features": bad}]
    err = only_error(S.ModelSpec, {"layers": layers})
    assert err["type"] == "greater_than"
    loc = err["loc"]
    assert loc[:2] == ("layers", 3) and loc[-1] == "out_features"


def test_non_integer_out_features_is_refused():
    err = only_error(S.ModelSpec, {"layers": [{"type": "linear", "out_features": 2.5}]})
    assert err["loc"][-1] == "out_features"


def test_empty_model_is_refused():
    err = only_error(S.ModelSpec, {"layers": []})
    assert err["type"] == "too_short" and err["loc"] == ("layers",)


@pytest.mark.parametrize("where, body, loc", [
    ("layer", {"layers": [{"type": "linear", "out_features": 3, "units": 3}]},
     ("layers", 0, "linear", "units")),
    ("activation", {"layers": [{"type": "relu", "inplace": True}]},
     ("layers", 0, "relu", "inplace")),
    ("model", {"layers": [{"type": "relu"}], "name": "x"}, ("name",)),
])
def test_unknown_model_field_is_forbidden(where, body, loc):
    err = only_error(S.ModelSpec, body)
    assert err["type"] == "extra_forbidden"
    assert err["loc"] == loc


def test_unknown_top_level_training_and_optimizer_fields_are_forbidden():
    body = job(epochs=3)  # belongs under training
    err = only_error(S.JobSpec, body)
    assert err["type"] == "extra_forbidden" and err["loc"] == ("epochs",)

    body = job()
    body["training"]["learning_rate"] = 0.1
    err = only_error(S.JobSpec, body)
    assert err["type"] == "extra_forbidden" and err["loc"] == ("training", "learning_rate")

    body = job(optimizer={"type": "adam", "momentum": 0.9})  # an SGD option on Adam
    err = only_error(S.JobSpec, body)
    assert err["type"] == "extra_forbidden" and err["loc"] == ("optimizer", "adam", "momentum")

    from app.ml.losses import MSE

    err = only_error(MSE, {"type": "mse", "reduction": "sum"})
    assert err["type"] == "extra_forbidden" and err["loc"] == ("reduction",)


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1])
def test_dropout_probability_outside_0_1_is_refused(p):
    err = only_error(S.ModelSpec, {"layers": [{"type": "relu"}, {"type": "dropout", "p": p}]})
    assert err["loc"] == ("layers", 1, "dropout", "p")
    assert err["type"] == ("less_than" if p >= 1 else "greater_than_equal")


@pytest.mark.parametrize("p", [0.0, 0.5, 0.999])
def test_dropout_probability_inside_0_1_is_accepted(p):
    assert S.ModelSpec.model_validate({"layers": [{"type": "dropout", "p": p}]}).layers[0].p == p


@pytest.mark.parametrize("opts", [
    {"nesterov": True},
    {"nesterov": True, "momentum": 0.0},
    {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
])
def test_nesterov_without_momentum_or_with_dampening_is_refused(opts):
    err = only_error(S.JobSpec, job(optimizer={"type": "sgd", **opts}))
    assert err["type"] == "value_error"
    assert err["loc"] == ("optimizer", "sgd", "nesterov")
    assert "nesterov requires momentum" in err["msg"]


def test_nesterov_with_momentum_is_accepted():
    opt = S.JobSpec.model_validate(job(optimizer={"type": "sgd", "momentum": 0.9, "nesterov": True})).optimizer
    assert isinstance(opt, S.SGD) and opt.nesterov is True and opt.momentum == 0.9


@pytest.mark.parametrize("bs", ["full", 1, 2, 32, 100_000])
def test_batch_size_full_or_positive_int_is_accepted(bs):
    assert S.TrainingSpec.model_validate({"batch_size": bs}).batch_size == bs


@pytest.mark.parametrize("bs", [0, -1, "half", "Full", 2.5, None])
def test_bad_batch_size_is_refused(bs):
    errs = errors_of(S.JobSpec, job(training={"batch_size": bs}))
    assert errs and all(e["loc"][:2] == ("training", "batch_size") for e in errs)


def test_zero_batch_size_error_says_what_is_allowed():
    errs = errors_of(S.TrainingSpec, {"batch_size": 0})
    assert all(e["loc"][0] == "batch_size" for e in errs)
    text = " ".join(e["msg"] for e in errs).lower()
    assert "greater than 0" in text or "positive" in text


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("validation_split", 1.0), ("validation_split", -0.1),
    ("seed", -1), ("seed", 2**63), ("log_every_steps", 0), ("device", "tpu"),
])
def test_training_ranges(field, value):
    err = only_error(S.TrainingSpec, {field: value})
    assert err["loc"][0] == field


@pytest.mark.parametrize("opt, loc_tail", [
    ({"type": "sgd", "lr": 0}, "lr"),
    ({"type": "sgd", "lr": -0.1}, "lr"),
    ({"type": "sgd", "momentum": -0.5}, "momentum"),
    ({"type": "adam", "betas": [0.9, 1.0]}, 1),
    ({"type": "adam", "eps": 0}, "eps"),
    ({"type": "adamw", "weight_decay": -1}, "weight_decay"),
    ({"type": "rmsprop", "alpha": 1.0}, "alpha"),
    ({"type": "adadelta", "rho": 1.5}, "rho"),
    ({"type": "adagrad", "lr_decay": -1}, "lr_decay"),
    ({"type": "rprop", "etas": [0.5, 1.0]}, 1),
    ({"type": "rprop", "etas": [1.0, 1.2]}, 0),
    ({"type": "rprop", "step_sizes": [1.0, 0.5]}, "step_sizes"),
])
def test_optimizer_ranges(opt, loc_tail):
    err = only_error(S.JobSpec, job(optimizer=opt))
    assert err["loc"][:2] == ("optimizer", opt["type"])
    assert err["loc"][-1] == loc_tail


def test_adam_betas_need_exactly_two_values():
    errs = errors_of(S.JobSpec, job(optimizer={"type": "adam", "betas": [0.9]}))
    assert errs[0]["loc"][:3] == ("optimizer", "adam", "betas")


def test_unknown_optimizer_and_loss_are_refused():
    err = only_error(S.JobSpec, job(optimizer={"type": "quickprop"}))
    assert err["type"] == "union_tag_invalid" and err["loc"] == ("optimizer",)
    err = only_error(S.JobSpec, job(loss={"type": "hinge"}))
    assert err["type"] == "union_tag_invalid" and err["loc"] == ("loss",)


def test_dataset_id_must_be_non_empty():
    err = only_error(S.JobSpec, job(dataset=""))
    assert err["loc"][0] == "dataset"  # then the union branch, which the API leaves out


# ---- defaults are PyTorch's own --------------------------------------------------

OPTIMIZER_SPECS = [
    (S.SGD, torch.optim.SGD), (S.Adam, torch.optim.Adam), (S.AdamW, torch.optim.AdamW),
    (S.RMSprop, torch.optim.RMSprop), (S.Adagrad, torch.optim.Adagrad),
    (S.Adadelta, torch.optim.Adadelta), (S.Adamax, torch.optim.Adamax), (S.NAdam, torch.optim.NAdam),
    (S.RAdam, torch.optim.RAdam), (S.Rprop, torch.optim.Rprop), (S.LBFGS, torch.optim.LBFGS),
    # Trainyard's own: the spec's defaults are the classes' (whose docstrings give the sources).
    (S.Newton, Newton), (S.LevenbergMarquardt, LevenbergMarquardt), (S.ConjugateGradient, ConjugateGradient),
    (S.ScaledConjugateGradient, ScaledConjugateGradient),
]


def test_every_optimizer_in_the_union_is_listed_here():
    union = typing.get_args(typing.get_args(S.Optimizer)[0])
    assert set(union) == {spec for spec, _ in OPTIMIZER_SPECS}


@pytest.mark.parametrize("spec_cls, torch_cls", OPTIMIZER_SPECS, ids=lambda c: c.__name__)
def test_optimizer_defaults_equal_pytorch_defaults(spec_cls, torch_cls):
    type_tag = typing.get_args(spec_cls.model_fields["type"].annotation)[0]
    defaults = spec_cls.model_validate({"type": type_tag}).model_dump(exclude={"type"})
    torch_defaults = torch_cls([torch.nn.Parameter(torch.zeros(1))]).defaults
    for name, value in defaults.items():
        want = torch_defaults[name]
        if name == "max_eval" and value is None:
            value = defaults["max_iter"] * 5 // 4  # LBFGS fills None in this way
        if name == "betas":
            assert tuple(value) == tuple(want)
        else:
            assert value == want, f"{spec_cls.__name__}.{name}: spec {value!r}, torch {want!r}"
