"""Initialization (app/ml/layers/init.py): each scheme, biases to zero, spec order, reproducibility."""
import math

import pytest
import torch
from torch import nn

from app.ml import spec as S
from app.ml.build import build_model
from app.ml.layers.init import apply_init
from app.ml.layers.registry import build_layer, has_init


def layer(d: dict):
    return S.ModelSpec.model_validate({"layers": [d]}).layers[0]


def scheme(d: dict):
    return layer({"type": "linear", "out_features": 1, "init": d}).init


def biases(module: nn.Module):
    return [p for n, p in module.named_parameters() if "bias" in n.rsplit(".", 1)[-1]]


def weights(module: nn.Module):
    return [p for n, p in module.named_parameters() if "bias" not in n.rsplit(".", 1)[-1]]


WEIGHT_LAYERS = [
    ({"type": "linear", "out_features": 6}, (4,)),
    ({"type": "conv2d", "out_channels": 4, "kernel_size": 3}, (2, 5, 5)),
    ({"type": "conv1d", "out_channels": 4, "kernel_size": 3}, (2, 5)),
    ({"type": "lstm", "hidden_size": 3, "num_layers": 2, "bidirectional": True}, (5, 2)),
    ({"type": "gru", "hidden_size": 3}, (5, 2)),
    ({"type": "rnn", "hidden_size": 3}, (5, 2)),
    ({"type": "attention", "num_heads": 2}, (3, 4)),
    ({"type": "embedding", "num_embeddings": 5, "embedding_dim": 3}, (4,)),
]
WEIGHT_IDS = [f"{spec['type']}{i}" for i, (spec, _) in enumerate(WEIGHT_LAYERS)]


@pytest.mark.parametrize("spec, shape", WEIGHT_LAYERS, ids=WEIGHT_IDS)
def test_zeros_makes_every_weight_and_bias_zero(spec, shape):
    module = build_layer(layer({**spec, "init": {"type": "zeros"}}), shape)
    params = list(module.parameters())
    assert params and all(torch.count_nonzero(p) == 0 for p in params)


@pytest.mark.parametrize("spec, shape", WEIGHT_LAYERS, ids=WEIGHT_IDS)
def test_every_scheme_zeroes_biases_and_redraws_weights(spec, shape):
    torch.manual_seed(0)
    default = build_layer(layer(spec), shape)
    torch.manual_seed(0)
    module = build_layer(layer({**spec, "init": {"type": "normal", "std": 0.5}}), shape)
    assert all(torch.count_nonzero(b) == 0 for b in biases(module))
    for ours, theirs in zip(weights(module), weights(default)):
        assert not torch.equal(ours, theirs)


def test_xavier_uniform_stays_within_its_bound():
    module = build_layer(layer({"type": "linear", "out_features": 300,
                                "init": {"type": "xavier_uniform", "gain": 2.0}}), (200,))
    bound = 2.0 * math.sqrt(6 / (200 + 300))
    assert module.weight.abs().max() <= bound
    assert module.weight.abs().max() > 0.99 * bound  # 60,000 draws reach the edge


@pytest.mark.parametrize("d, fan, gain", [
    ({"type": "kaiming_normal", "nonlinearity": "relu"}, 400, math.sqrt(2)),
    ({"type": "kaiming_normal", "nonlinearity": "relu", "mode": "fan_out"}, 300, math.sqrt(2)),
    ({"type": "kaiming_normal"}, 400, math.sqrt(2)),  # PyTorch's default: leaky_relu with a=0
    ({"type": "kaiming_normal", "nonlinearity": "tanh"}, 400, 5 / 3),
    ({"type": "xavier_normal"}, None, 1.0),
])
def test_normal_schemes_have_the_documented_std(d, fan, gain):
    torch.manual_seed(0)
    module = build_layer(layer({"type": "linear", "out_features": 300, "init": d}), (400,))
    std = gain / math.sqrt(fan) if fan else gain * math.sqrt(2 / (400 + 300))
    assert module.weight.std().item() == pytest.approx(std, rel=0.02)


def test_normal_has_its_mean_and_std():
    module = build_layer(layer({"type": "linear", "out_features": 300,
                                "init": {"type": "normal", "mean": 0.5, "std": 0.01}}), (400,))
    assert module.weight.mean().item() == pytest.approx(0.5, abs=1e-3)
    assert module.weight.std().item() == pytest.approx(0.01, rel=0.02)


def test_embedding_padding_row_stays_zero_after_a_scheme():
    module = build_layer(layer({"type": "embedding", "num_embeddings": 6, "embedding_dim": 4,
                                "padding_idx": 2, "init": {"type": "normal"}}), (3,))
    assert torch.count_nonzero(module.weight[2]) == 0
    assert torch.count_nonzero(module.weight) == 5 * 4


def test_init_equals_a_hand_written_script_in_spec_order():
    specs = [layer({"type": "conv2d", "out_channels": 4, "kernel_size": 3,
                    "init": {"type": "kaiming_uniform", "nonlinearity": "relu"}}),
             layer({"type": "relu"}),
             layer({"type": "flatten"}),
             layer({"type": "linear", "out_features": 3, "init": {"type": "xavier_normal", "gain": 0.5}})]
    torch.manual_seed(7)
    shapes = [(1, 6, 6), (4, 4, 4), (4, 4, 4), (64,)]
    built = [build_layer(s, shape) for s, shape in zip(specs, shapes)]

    torch.manual_seed(7)
    conv = nn.Conv2d(1, 4, 3)  # built as PyTorch builds it, then re-initialized right away
    nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    lin = nn.Linear(64, 3)
    nn.init.xavier_normal_(lin.weight, gain=0.5)
    nn.init.zeros_(lin.bias)
    for ours, theirs in [(built[0], conv), (built[3], lin)]:
        for a, b in zip(ours.parameters(), theirs.parameters()):
            assert torch.equal(a, b)


def test_same_seed_same_weights_other_seed_differs():
    spec = layer({"type": "lstm", "hidden_size": 4, "init": {"type": "xavier_uniform"}})
    torch.manual_seed(3)
    a = build_layer(spec, (5, 2))
    torch.manual_seed(3)
    b = build_layer(spec, (5, 2))
    torch.manual_seed(4)
    c = build_layer(spec, (5, 2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.rnn.weight_ih_l0, c.rnn.weight_ih_l0)


# ---- the model's default ---------------------------------------------------------------

ZEROS = scheme({"type": "zeros"})


def test_default_init_applies_to_weight_layers_without_their_own():
    own = layer({"type": "linear", "out_features": 3, "init": {"type": "normal", "mean": 1.0, "std": 0.1}})
    plain = layer({"type": "linear", "out_features": 3})
    assert torch.count_nonzero(build_layer(plain, (4,), default_init=ZEROS).weight) == 0
    assert build_layer(own, (4,), default_init=ZEROS).weight.mean() > 0.5  # its own wins


def test_default_init_leaves_norm_layers_at_one_and_zero():
    for spec, shape in [({"type": "batchnorm1d"}, (4,)), ({"type": "layernorm"}, (4,)),
                        ({"type": "batchnorm2d"}, (2, 3, 3))]:
        module = build_layer(layer(spec), shape, default_init=ZEROS)
        assert not has_init(layer(spec))
        assert torch.equal(module.weight, torch.ones_like(module.weight))


def test_residual_init_is_the_default_inside_it_and_its_projections():
    res = layer({"type": "residual", "init": {"type": "zeros"}, "layers": [
        {"type": "linear", "out_features": 5},
        {"type": "linear", "out_features": 6, "init": {"type": "normal", "mean": 1.0, "std": 0.1}}]})
    (module,) = build_model(S.ModelSpec(layers=[res]), (4,))
    assert torch.count_nonzero(module.block[0].weight) == 0
    assert module.block[1].weight.mean() > 0.5
    assert torch.count_nonzero(module.shortcut.weight) == 0
    # without its own init, the model's default reaches inside the block
    inner = layer({"type": "residual", "layers": [{"type": "linear", "out_features": 6}]})
    (module,) = build_model(S.ModelSpec(layers=[inner], init=ZEROS), (4,))
    assert torch.count_nonzero(module.block[0].weight) == torch.count_nonzero(module.shortcut.weight) == 0


def test_apply_init_skips_one_dimensional_weights():
    norm = nn.LayerNorm(4)
    apply_init(norm, scheme({"type": "xavier_uniform"}))  # fan-in needs 2 dims: left as PyTorch made it
    assert torch.equal(norm.weight, torch.ones(4)) and torch.equal(norm.bias, torch.zeros(4))


@pytest.mark.skipif("init" not in S.ModelSpec.model_fields,
                    reason="ModelSpec.init is added in app/ml/spec.py (see docs/layers.md)")
def test_model_init_reaches_every_weight_layer_through_build_model():
    spec = S.ModelSpec.model_validate({"init": {"type": "zeros"}, "layers": [
        {"type": "linear", "out_features": 4}, {"type": "batchnorm1d"},
        {"type": "residual", "layers": [{"type": "linear", "out_features": 3}]}]})
    model = build_model(spec, (2,))
    assert torch.count_nonzero(model[0].weight) == 0
    assert torch.equal(model[1].weight, torch.ones(4))
    assert torch.count_nonzero(model[2].block[0].weight) == torch.count_nonzero(model[2].shortcut.weight) == 0
