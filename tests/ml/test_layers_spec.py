"""Layer specs (app/ml/layers/specs.py): defaults are PyTorch's, and a bad field is named by its path.

Paths are checked as the API reports them (app/errors.py), with pydantic's union tags
dropped: model.layers[2].layers[0].out_features.
"""
import inspect

import pytest
from pydantic import ValidationError
from torch import nn

from app.errors import validation_errors
from app.ml import spec as S
from app.ml.layers import init as I
from app.ml.layers import specs as L


def api_errors(*layers) -> dict[str, str]:
    """field -> message, as POST /v1/jobs would answer for these layers."""
    body = {"model": {"layers": list(layers)}}
    with pytest.raises(ValidationError) as info:
        S.ModelSpec.model_validate(body["model"])
    errors = [{**e, "loc": ("model", *e["loc"])} for e in info.value.errors()]
    return {e["field"]: e["message"] for e in validation_errors(errors, body)}


CONV = {"type": "conv2d", "out_channels": 4, "kernel_size": 3}


@pytest.mark.parametrize("layers, field, words", [
    ([{"type": "relu"}, {"type": "relu"}, {"type": "residual", "layers": [{"type": "linear", "out_features": -1}]}],
     "model.layers[2].layers[0].out_features", "greater than 0"),
    ([{"type": "residual", "layers": [{"type": "relu"}, {"type": "conv9d"}]}],
     "model.layers[0].layers[1].type", "conv9d"),
    ([{"type": "residual", "layers": [{"type": "residual", "layers": [{"type": "dropout", "p": 2}]}]}],
     "model.layers[0].layers[0].layers[0].p", "less than 1"),
    ([{"type": "residual", "layers": []}], "model.layers[0].layers", "at least 1"),
    ([{"type": "residual", "layers": [{"type": "relu"}], "projection": "conv"}],
     "model.layers[0].projection", "auto"),
    ([{"type": "attention", "num_heads": 2, "dropout": 2}], "model.layers[0].dropout", "less than 1"),
    ([{"type": "attention", "num_heads": 0}], "model.layers[0].num_heads", "greater than 0"),
    ([{"type": "lstm", "hidden_size": 4, "dropout": 0.2}], "model.layers[0].dropout", "num_layers > 1"),
    ([{"type": "lstm", "hidden_size": 4, "output": "all"}], "model.layers[0].output", "'last'"),
    ([{"type": "rnn", "hidden_size": 4, "nonlinearity": "sigmoid"}], "model.layers[0].nonlinearity", "'tanh'"),
    ([{**CONV, "stride": 2, "padding": "same"}], "model.layers[0].padding", "'same' padding needs stride 1"),
    ([{**CONV, "out_channels": 4, "groups": 3}], "model.layers[0].groups", "groups=3 must divide out_channels=4"),
    ([{**CONV, "kernel_size": [3, 3, 3]}], "model.layers[0].kernel_size",
     "must be a positive integer or a list of 2 of them"),
    ([{**CONV, "kernel_size": 0}], "model.layers[0].kernel_size", "positive integer"),
    ([{**CONV, "padding": "full"}], "model.layers[0].padding", "'same' or 'valid'"),
    ([{**CONV, "padding": -1}], "model.layers[0].padding", "non-negative"),
    ([{"type": "conv1d", "out_channels": 2, "kernel_size": [3, 3]}], "model.layers[0].kernel_size",
     "must be a positive integer"),
    ([{"type": "maxpool2d", "kernel_size": 3, "padding": 2}], "model.layers[0].padding", "at most half"),
    ([{"type": "avgpool1d", "kernel_size": 2, "stride": 0}], "model.layers[0].stride", "positive integer"),
    ([{"type": "adaptive_avgpool", "output_size": [1, 2, 3]}], "model.layers[0].output_size", "list of 2"),
    ([{"type": "reshape", "shape": [-1, -1]}], "model.layers[0].shape", "only one size can be -1"),
    ([{"type": "reshape", "shape": [4, 0]}], "model.layers[0].shape", "positive"),
    ([{"type": "embedding", "num_embeddings": 10, "embedding_dim": 2, "padding_idx": 10}],
     "model.layers[0].padding_idx", "-10..9"),
    ([{"type": "gelu", "approximate": "fast"}], "model.layers[0].approximate", "'tanh'"),
    ([{"type": "layernorm", "eps": 0}], "model.layers[0].eps", "greater than 0"),
    # init: on layers with weights only, and its own fields named under init
    ([{"type": "relu", "init": {"type": "zeros"}}], "model.layers[0].init", "not permitted"),
    ([{"type": "batchnorm2d", "init": {"type": "zeros"}}], "model.layers[0].init", "not permitted"),
    ([{"type": "linear", "out_features": 2, "init": {"type": "normal", "std": -1}}],
     "model.layers[0].init.std", "greater than 0"),
    ([{"type": "linear", "out_features": 2, "init": {"type": "orthogonal"}}],
     "model.layers[0].init.type", "orthogonal"),
    ([{**CONV, "init": {"type": "kaiming_normal", "nonlinearity": "swish"}}],
     "model.layers[0].init.nonlinearity", "'relu'"),
    ([{"type": "linear", "out_features": 2, "init": {"type": "xavier_uniform", "std": 1}}],
     "model.layers[0].init.std", "not permitted"),
])
def test_bad_layer_field_is_named_by_its_path(layers, field, words):
    errors = api_errors(*layers)
    assert field in errors, errors
    assert words in errors[field], errors[field]


def test_residual_blocks_nested_too_deep_are_refused():
    block = {"type": "relu"}
    for _ in range(L.MAX_NESTING + 1):
        block = {"type": "residual", "layers": [block]}
    errors = api_errors(block)
    assert any("nested more than" in m for m in errors.values()), errors


def test_sizes_parse_to_ints_or_tuples_and_round_trip_as_json():
    spec = S.ModelSpec.model_validate({"layers": [
        {**CONV, "kernel_size": [3, 1], "padding": "same"},
        {"type": "conv1d", "out_channels": 2, "kernel_size": [5], "stride": 2},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "residual", "layers": [{"type": "linear", "out_features": 3,
                                         "init": {"type": "kaiming_uniform", "nonlinearity": "relu"}}]},
    ]})
    conv2d, conv1d, pool, res = spec.layers
    assert conv2d.kernel_size == (3, 1) and conv2d.padding == "same" and conv2d.stride == 1
    assert conv1d.kernel_size == 5 and pool.stride is None
    assert isinstance(res.layers[0].init, I.KaimingUniform)
    dumped = spec.model_dump(mode="json")
    assert dumped["layers"][0]["kernel_size"] == [3, 1]
    assert S.ModelSpec.model_validate_json(spec.model_dump_json()) == spec


def test_json_schema_of_the_recursive_spec_builds():
    schema = S.ModelSpec.model_json_schema()
    assert "Residual" in schema["$defs"] and "Conv2d" in schema["$defs"]


# ---- defaults are PyTorch's own -------------------------------------------------------------

def torch_default(cls, name):
    return inspect.signature(cls).parameters[name].default


@pytest.mark.parametrize("spec_cls, tag, torch_cls, names", [
    (L.Conv2d, "conv2d", nn.Conv2d, ["stride", "padding", "dilation", "groups", "bias"]),
    (L.Conv1d, "conv1d", nn.Conv1d, ["stride", "padding", "dilation", "groups", "bias"]),
    (L.MaxPool2d, "maxpool2d", nn.MaxPool2d, ["stride", "padding"]),
    (L.AvgPool1d, "avgpool1d", nn.AvgPool1d, ["stride", "padding"]),
    (L.Embedding, "embedding", nn.Embedding, ["padding_idx"]),
    (L.LayerNorm, "layernorm", nn.LayerNorm, ["eps", "elementwise_affine", "bias"]),
    (L.BatchNorm2d, "batchnorm2d", nn.BatchNorm2d, ["eps", "momentum", "affine"]),
    (L.Attention, "attention", nn.MultiheadAttention, ["dropout", "bias"]),
    (L.ELU, "elu", nn.ELU, ["alpha"]),
    (L.GELU, "gelu", nn.GELU, ["approximate"]),
])
def test_layer_defaults_equal_pytorch_defaults(spec_cls, tag, torch_cls, names):
    required = {"conv2d": CONV, "conv1d": {**CONV, "type": "conv1d"}, "maxpool2d": {"kernel_size": 2},
                "avgpool1d": {"kernel_size": 2}, "attention": {"num_heads": 1},
                "embedding": {"num_embeddings": 3, "embedding_dim": 2}}.get(tag, {})
    spec = spec_cls.model_validate({**required, "type": tag})
    for name in names:
        assert getattr(spec, name) == torch_default(torch_cls, name), name


def test_recurrent_defaults_equal_pytorch_defaults():
    lstm = nn.LSTM(2, 3)
    spec = L.LSTM.model_validate({"type": "lstm", "hidden_size": 3})
    assert (spec.num_layers, spec.bias, spec.dropout, spec.bidirectional) == (
        lstm.num_layers, lstm.bias, lstm.dropout, lstm.bidirectional)
    assert L.RNN.model_validate({"type": "rnn", "hidden_size": 3}).nonlinearity == nn.RNN(2, 3).nonlinearity


@pytest.mark.parametrize("spec_cls, fn", [
    (I.XavierUniform, nn.init.xavier_uniform_), (I.XavierNormal, nn.init.xavier_normal_),
    (I.KaimingUniform, nn.init.kaiming_uniform_), (I.KaimingNormal, nn.init.kaiming_normal_),
    (I.Normal, nn.init.normal_),
])
def test_init_defaults_equal_torch_nn_init_defaults(spec_cls, fn):
    tag = spec_cls.model_fields["type"].annotation.__args__[0]
    spec = spec_cls.model_validate({"type": tag})
    for name, value in spec.model_dump(exclude={"type"}).items():
        assert value == torch_default(fn, name), name
