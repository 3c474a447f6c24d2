"""Every shape a layer refuses is a SpecError naming the layer's path and both shapes."""
import pytest

from app.ml import spec as S
from app.ml.errors import SpecError
from app.ml.layers import rules
from app.ml.shapes import dry_run


def refused(layers, shape) -> SpecError:
    model = S.ModelSpec.model_validate({"layers": layers})
    with pytest.raises(SpecError) as info:
        dry_run(model, shape)
    return info.value


RELU = {"type": "relu"}


@pytest.mark.parametrize("layer, shape, words", [
    # rank: what was expected, what was given, and how to fix it when there is an obvious way
    ({"type": "conv2d", "out_channels": 4, "kernel_size": 3}, (64,),
     ["conv2d expects 4-D input (batch, channels, h, w), got (batch, 64)", '"shape": [1, 8, 8]']),
    ({"type": "conv2d", "out_channels": 4, "kernel_size": 3}, (60,),
     ["conv2d expects 4-D input", "add a reshape layer"]),
    ({"type": "conv2d", "out_channels": 4, "kernel_size": 3}, (8, 8),
     ["conv2d expects 4-D input (batch, channels, h, w), got (batch, 8, 8)"]),
    ({"type": "conv1d", "out_channels": 4, "kernel_size": 3}, (10,),
     ["conv1d expects 3-D input (batch, channels, length), got (batch, 10)", '"shape": [1, 10]']),
    ({"type": "maxpool2d", "kernel_size": 2}, (16,), ["maxpool2d expects 4-D input", "(batch, 16)"]),
    ({"type": "avgpool1d", "kernel_size": 2}, (1, 4, 4), ["avgpool1d expects 3-D input", "(batch, 1, 4, 4)"]),
    ({"type": "adaptive_avgpool", "output_size": 1}, (16,),
     ["adaptive_avgpool expects 3-D (batch, channels, length) or 4-D", "got (batch, 16)"]),
    ({"type": "batchnorm2d"}, (8,), ["batchnorm2d expects 4-D input (batch, channels, h, w), got (batch, 8)"]),
    ({"type": "lstm", "hidden_size": 4}, (20,),
     ["lstm expects 3-D input (batch, seq, features), got (batch, 20)", '"shape": [20, 1]']),
    ({"type": "gru", "hidden_size": 4}, (1, 5, 5), ["gru expects 3-D input", "(batch, 1, 5, 5)", "reshape"]),
    ({"type": "rnn", "hidden_size": 4}, (7,), ["rnn expects 3-D input (batch, seq, features)"]),
    ({"type": "attention", "num_heads": 2}, (8,),
     ["attention expects 3-D input (batch, seq, embed), got (batch, 8)", "embedding"]),
    ({"type": "attention", "num_heads": 2}, (2, 3, 4), ["attention expects 3-D input", "(batch, 2, 3, 4)"]),
    # sizes that do not divide or fit
    ({"type": "conv2d", "out_channels": 4, "kernel_size": 3, "groups": 2}, (3, 8, 8),
     ["conv2d groups=2 must divide the input's 3 channels", "(batch, 3, 8, 8)"]),
    ({"type": "conv2d", "out_channels": 4, "kernel_size": 5}, (1, 3, 3),
     ["conv2d kernel_size 5", "does not fit the input's spatial size (3, 3)", "(batch, 1, 3, 3)"]),
    ({"type": "conv1d", "out_channels": 4, "kernel_size": 3, "dilation": 4}, (1, 8),
     ["conv1d kernel_size 3 with dilation 4 does not fit", "(8,)"]),
    ({"type": "maxpool2d", "kernel_size": 4}, (2, 3, 3), ["maxpool2d kernel_size 4 does not fit"]),
    ({"type": "avgpool2d", "kernel_size": 4, "padding": 1}, (2, 1, 1),
     ["avgpool2d kernel_size 4 and padding 1 does not fit the input's spatial size (1, 1)"]),
    ({"type": "adaptive_avgpool", "output_size": [2, 2]}, (3, 10),
     ["over (batch, channels, length) takes one output_size, got (2, 2)"]),
    ({"type": "attention", "num_heads": 4}, (5, 10),
     ["attention num_heads=4 must divide embed_dim=10", "(batch, 5, 10)"]),
    ({"type": "reshape", "shape": [3, 3]}, (10,),
     ["reshape to (batch, 3, 3) needs 9 elements per sample, but the input (batch, 10) has 10"]),
    ({"type": "reshape", "shape": [3, -1]}, (2, 5), ["needs a multiple of 3 elements", "(batch, 2, 5) has 10"]),
    ({"type": "log_softmax", "dim": 3}, (4,), ["log_softmax dim 3 is out of range for input (batch, 4)"]),
    ({"type": "log_softmax", "dim": 0}, (4,), ["log_softmax over dim 0 mixes the samples"]),
])
def test_refused_input_names_the_layer_and_both_shapes(layer, shape, words):
    err = refused([RELU, layer], shape)
    assert err.field == "model.layers[1]"
    assert str(err) == f"model.layers[1]: {err.message}"
    for w in words:
        assert w in err.message, err.message


# ---- residual blocks -------------------------------------------------------------------

def residual(*layers, **options) -> dict:
    return {"type": "residual", "layers": list(layers), **options}


def linear(n: int) -> dict:
    return {"type": "linear", "out_features": n}


def conv(n: int, **options) -> dict:
    return {"type": "conv2d", "out_channels": n, "kernel_size": 3, **options}


def test_error_inside_a_residual_block_names_the_nested_layer():
    err = refused([RELU, RELU, residual(linear(4), {"type": "conv2d", "out_channels": 2,
                                                    "kernel_size": 3})], (6,))
    assert err.field == "model.layers[2].layers[1]"
    assert "conv2d expects 4-D input (batch, channels, h, w), got (batch, 4)" in err.message


def test_error_two_blocks_deep_names_the_whole_path():
    inner = residual(RELU, {"type": "attention", "num_heads": 3})
    err = refused([residual(linear(4), inner)], (2, 5))
    assert err.field == "model.layers[0].layers[1].layers[1]"
    assert "num_heads=3 must divide embed_dim=4" in err.message


@pytest.mark.parametrize("block, options, shape, words", [
    ([linear(8)], {"projection": "identity"}, (4,),
     ["maps (batch, 4) to (batch, 8)", "projection 'identity' needs the block to keep the shape"]),
    ([{"type": "flatten"}], {}, (2, 3), ["maps (batch, 2, 3) to (batch, 6)", "number of dims"]),
    ([conv(4)], {}, (2, 8, 8), ["maps (batch, 2, 8, 8) to (batch, 4, 6, 6)",
                                "no 1x1 convolution shortcut with a stride turns the spatial size (8, 8) into (6, 6)"]),
    ([{"type": "reshape", "shape": [4, 3]}], {}, (3, 4), ["maps (batch, 3, 4) to (batch, 4, 3)",
                                                          "a linear shortcut can change only the last dim"]),
])
def test_residual_shapes_no_shortcut_can_match(block, options, shape, words):
    err = refused([RELU, residual(*block, **options)], shape)
    assert err.field == "model.layers[1]"
    for w in words:
        assert w in err.message, err.message


@pytest.mark.parametrize("block, shape, kind, out", [
    ([linear(4), RELU, linear(4)], (4,), "Identity", (4,)),
    ([linear(8)], (4,), "Linear", (8,)),
    ([linear(8)], (5, 4), "Linear", (5, 8)),  # (seq, features): the last dim only
    ([conv(8, padding=1)], (3, 6, 6), "Conv2d", (8, 6, 6)),
    ([conv(8, stride=2, padding=1)], (3, 7, 7), "Conv2d", (8, 4, 4)),
    ([conv(8, stride=[2, 1], padding=1)], (3, 8, 5), "Conv2d", (8, 4, 5)),
    ([{"type": "conv1d", "out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1}], (2, 9), "Conv1d",
     (6, 5)),
    ([{"type": "maxpool1d", "kernel_size": 3}], (2, 9), "Conv1d", (2, 3)),
])
def test_auto_projection_makes_the_shapes_match(block, shape, kind, out):
    import torch

    from app.ml.build import build_model

    model_spec = S.ModelSpec.model_validate({"layers": [residual(*block)]})
    (report,) = dry_run(model_spec, shape)
    model = build_model(model_spec, shape)
    assert type(model[0].shortcut).__name__ == kind
    assert report.output_shape == out == tuple(model(torch.randn(2, *shape)).shape[1:])
    if kind != "Identity":
        assert model[0].shortcut.bias is None


# ---- what the rules do not foresee is still named ----------------------------------------

def test_a_torch_error_the_rules_miss_still_names_the_layer(monkeypatch):
    monkeypatch.delitem(rules.RULES, "conv2d")
    err = refused([RELU, {"type": "conv2d", "out_channels": 4, "kernel_size": 3}], (1, 2, 2))
    assert err.field == "model.layers[1]"
    assert err.message.startswith("conv2d cannot take input (batch, 1, 2, 2): ")


def test_rules_cover_only_known_layer_types():
    from app.ml.layers.registry import LAYER_BUILDERS

    assert set(rules.RULES) <= set(LAYER_BUILDERS)
