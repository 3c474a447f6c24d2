"""New layers (app/ml/layers): each builds the PyTorch module, and the dry run's shapes are a real forward's."""
import pytest
import torch
from torch import nn

from app.ml import spec as S
from app.ml.build import build_model
from app.ml.layers.modules import Recurrent, Reshape, SelfAttention, TokenEmbedding
from app.ml.layers.registry import build_layer
from app.ml.layers.residual import Residual
from app.ml.shapes import dry_run


def model_spec(*layers) -> S.ModelSpec:
    return S.ModelSpec.model_validate({"layers": list(layers)})


# (layer, sample input shape, expected class, expected attributes, expected output shape)
NEW_LAYER_CASES = [
    ({"type": "conv1d", "out_channels": 4, "kernel_size": 3}, (2, 10), nn.Conv1d,
     {"in_channels": 2, "out_channels": 4, "kernel_size": (3,), "stride": (1,), "padding": (0,)}, (4, 8)),
    ({"type": "conv1d", "out_channels": 6, "kernel_size": [5], "padding": "same", "groups": 3,
      "bias": False}, (3, 9), nn.Conv1d, {"in_channels": 3, "groups": 3, "padding": "same", "bias": None},
     (6, 9)),
    ({"type": "conv2d", "out_channels": 8, "kernel_size": 3}, (1, 8, 8), nn.Conv2d,
     {"in_channels": 1, "out_channels": 8, "kernel_size": (3, 3), "dilation": (1, 1)}, (8, 6, 6)),
    ({"type": "conv2d", "out_channels": 4, "kernel_size": [3, 1], "stride": [2, 1], "padding": [1, 0],
      "dilation": 2}, (3, 9, 7), nn.Conv2d,
     {"kernel_size": (3, 1), "stride": (2, 1), "padding": (1, 0), "dilation": (2, 2)}, (4, 4, 7)),
    ({"type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": "valid"}, (2, 5, 5), nn.Conv2d,
     {"padding": "valid"}, (2, 3, 3)),
    ({"type": "maxpool1d", "kernel_size": 2}, (3, 9), nn.MaxPool1d, {"kernel_size": 2, "stride": 2}, (3, 4)),
    ({"type": "avgpool1d", "kernel_size": 3, "stride": 1, "padding": 1}, (2, 5), nn.AvgPool1d,
     {"kernel_size": (3,), "stride": (1,), "padding": (1,)}, (2, 5)),
    ({"type": "maxpool2d", "kernel_size": 2}, (4, 8, 6), nn.MaxPool2d, {"kernel_size": 2, "stride": 2},
     (4, 4, 3)),
    ({"type": "avgpool2d", "kernel_size": [2, 3], "stride": 1}, (1, 4, 4), nn.AvgPool2d,
     {"kernel_size": (2, 3), "stride": 1}, (1, 3, 2)),
    ({"type": "adaptive_avgpool", "output_size": 1}, (8, 5, 7), nn.AdaptiveAvgPool2d,
     {"output_size": 1}, (8, 1, 1)),
    ({"type": "adaptive_avgpool", "output_size": [2, 3]}, (8, 5, 7), nn.AdaptiveAvgPool2d,
     {"output_size": (2, 3)}, (8, 2, 3)),
    ({"type": "adaptive_avgpool", "output_size": 4}, (3, 10), nn.AdaptiveAvgPool1d,
     {"output_size": 4}, (3, 4)),
    ({"type": "reshape", "shape": [1, 4, 4]}, (16,), Reshape, {"shape": (1, 4, 4)}, (1, 4, 4)),
    ({"type": "reshape", "shape": [-1, 2]}, (3, 4), Reshape, {"shape": (-1, 2)}, (6, 2)),
    ({"type": "rnn", "hidden_size": 5, "nonlinearity": "relu"}, (7, 3), Recurrent,
     {"output": "last"}, (5,)),
    ({"type": "lstm", "hidden_size": 6, "num_layers": 2, "dropout": 0.1, "output": "sequence"}, (7, 3),
     Recurrent, {"output": "sequence"}, (7, 6)),
    ({"type": "lstm", "hidden_size": 4, "bidirectional": True}, (5, 2), Recurrent, {}, (8,)),
    ({"type": "gru", "hidden_size": 4, "bidirectional": True, "output": "sequence", "bias": False},
     (5, 2), Recurrent, {}, (5, 8)),
    ({"type": "embedding", "num_embeddings": 10, "embedding_dim": 3, "padding_idx": 0}, (6,),
     TokenEmbedding, {"num_embeddings": 10, "embedding_dim": 3, "padding_idx": 0}, (6, 3)),
    ({"type": "attention", "num_heads": 2}, (5, 8), SelfAttention, {}, (5, 8)),
    ({"type": "attention", "num_heads": 4, "dropout": 0.1, "bias": False}, (3, 8), SelfAttention, {},
     (3, 8)),
    ({"type": "batchnorm2d"}, (3, 4, 4), nn.BatchNorm2d, {"num_features": 3, "eps": 1e-5}, (3, 4, 4)),
    ({"type": "batchnorm2d", "momentum": 0.3, "affine": False}, (2, 3, 3), nn.BatchNorm2d,
     {"momentum": 0.3, "weight": None}, (2, 3, 3)),
    ({"type": "layernorm"}, (4, 6), nn.LayerNorm, {"normalized_shape": (6,), "eps": 1e-5}, (4, 6)),
    ({"type": "layernorm", "eps": 1e-3, "elementwise_affine": False}, (6,), nn.LayerNorm,
     {"elementwise_affine": False, "weight": None}, (6,)),
    ({"type": "layernorm", "bias": False}, (6,), nn.LayerNorm, {"bias": None}, (6,)),
    ({"type": "elu", "alpha": 0.5}, (5,), nn.ELU, {"alpha": 0.5}, (5,)),
    ({"type": "gelu"}, (5,), nn.GELU, {"approximate": "none"}, (5,)),
    ({"type": "gelu", "approximate": "tanh"}, (2, 5), nn.GELU, {"approximate": "tanh"}, (2, 5)),
    ({"type": "log_softmax"}, (5,), nn.LogSoftmax, {"dim": -1}, (5,)),
    ({"type": "log_softmax", "dim": 1}, (3, 5), nn.LogSoftmax, {"dim": 1}, (3, 5)),
    ({"type": "residual", "layers": [{"type": "linear", "out_features": 5}, {"type": "relu"}]}, (5,),
     Residual, {}, (5,)),
    ({"type": "residual", "layers": [{"type": "linear", "out_features": 7}]}, (5,), Residual, {}, (7,)),
]


def sample(shape, layer_type: str, batch: int = 5) -> torch.Tensor:
    if layer_type == "embedding":
        return torch.randint(0, 10, (batch, *shape)).float()  # token ids, stored as float32
    return torch.randn(batch, *shape, requires_grad=True)  # so layers without weights backprop too


@pytest.mark.parametrize("layer, in_shape, cls, attrs, out_shape", NEW_LAYER_CASES,
                         ids=[f"{c[0]['type']}-{i}" for i, c in enumerate(NEW_LAYER_CASES)])
def test_new_layer_builds_and_dry_run_matches_a_real_forward(layer, in_shape, cls, attrs, out_shape):
    spec = model_spec(layer)
    (module,) = build_model(spec, in_shape)  # a residual block is built from its dry run's reports
    assert type(module) is cls
    for name, value in attrs.items():
        got = getattr(module, name)
        assert (got is None) if value is None else got == value, name
    assert all(p.device.type == "cpu" for p in module.parameters())

    (report,) = dry_run(spec, in_shape)
    torch.manual_seed(0)
    out = module(sample(in_shape, layer["type"]))
    assert report.input_shape == in_shape and report.path == "model.layers[0]"
    assert report.output_shape == tuple(out.shape[1:]) == out_shape
    assert out.shape[0] == 5
    assert report.parameters == sum(p.numel() for p in module.parameters())
    out.float().sum().backward()  # trainable end to end


def test_residual_report_lists_its_layers_with_nested_paths():
    spec = model_spec({"type": "flatten"}, {"type": "residual", "layers": [
        {"type": "linear", "out_features": 8}, {"type": "relu"}, {"type": "linear", "out_features": 4}]})
    flat, res = dry_run(spec, (2, 3))
    assert res.input_shape == (6,) and res.output_shape == (4,)
    assert [(r.path, r.input_shape, r.output_shape) for r in res.layers] == [
        ("model.layers[1].layers[0]", (6,), (8,)),
        ("model.layers[1].layers[1]", (8,), (8,)),
        ("model.layers[1].layers[2]", (8,), (4,)),
    ]
    # the block's 56 + 36 parameters, and the 6 -> 4 projection's 24 (no bias)
    assert res.parameters == 56 + 36 + 24 == sum(r.parameters for r in res.layers) + 24


def test_recurrent_last_is_the_final_state_of_each_direction():
    torch.manual_seed(0)
    spec = model_spec({"type": "lstm", "hidden_size": 3, "bidirectional": True, "num_layers": 2})
    module = build_layer(spec.layers[0], (6, 2))
    x = torch.randn(4, 6, 2)
    _, (h_n, _) = module.rnn(x)
    # h_n: (layers * directions, batch, hidden); the top layer's two directions come last
    assert torch.equal(module(x), torch.cat([h_n[-2], h_n[-1]], dim=1))


def test_unidirectional_last_is_the_last_steps_output():
    torch.manual_seed(0)
    module = build_layer(model_spec({"type": "gru", "hidden_size": 3}).layers[0], (6, 2))
    x = torch.randn(4, 6, 2)
    assert torch.equal(module(x), module.rnn(x)[0][:, -1])


def test_embedding_casts_float_ids_and_zeroes_the_padding_row():
    torch.manual_seed(0)
    spec = model_spec({"type": "embedding", "num_embeddings": 5, "embedding_dim": 2, "padding_idx": 1})
    module = build_layer(spec.layers[0], (3,))
    assert torch.equal(module.weight[1], torch.zeros(2))
    ids = torch.tensor([[0.0, 1.0, 4.0]])
    assert torch.equal(module(ids), module.weight[[0, 1, 4]].unsqueeze(0))
    assert list(module.state_dict()) == ["weight"]  # loads into a plain nn.Embedding


@pytest.mark.parametrize("ids, words", [([0.0, 5.0], "from 0 to 5"), ([-1.0, 2.0], "from -1 to 2")])
def test_embedding_out_of_range_ids_say_which_and_what_is_allowed(ids, words):
    module = build_layer(model_spec({"type": "embedding", "num_embeddings": 5,
                                     "embedding_dim": 2}).layers[0], (2,))
    with pytest.raises(IndexError) as info:
        module(torch.tensor([ids]))
    assert words in str(info.value) and "0..4" in str(info.value) and "num_embeddings=5" in str(info.value)


def test_attention_is_self_attention_and_matches_multihead_attention():
    torch.manual_seed(0)
    module = build_layer(model_spec({"type": "attention", "num_heads": 2}).layers[0], (4, 6))
    x = torch.randn(3, 4, 6)
    expected, _ = module.attn(x, x, x)
    assert torch.allclose(module(x), expected, atol=1e-6)
    assert module.attn.batch_first and module.attn.num_heads == 2 and module.attn.embed_dim == 6


def test_state_dict_keys_are_readable():
    spec = model_spec({"type": "lstm", "hidden_size": 4, "output": "sequence"},
                      {"type": "attention", "num_heads": 2},
                      {"type": "residual", "layers": [{"type": "linear", "out_features": 6}]})
    keys = list(build_model(spec, (5, 3)).state_dict())
    assert "0.rnn.weight_ih_l0" in keys and "1.attn.in_proj_weight" in keys
    assert "2.block.0.weight" in keys and "2.shortcut.weight" in keys


def test_layer_count_and_walk_include_the_layers_inside_blocks():
    from app.ml.shapes import layer_count, walk

    spec = model_spec({"type": "linear", "out_features": 4},
                      {"type": "residual", "layers": [{"type": "relu"}, {"type": "residual", "layers": [
                          {"type": "batchnorm1d"}]}]})
    assert [l.type for l in walk(spec.layers)] == ["linear", "residual", "relu", "residual", "batchnorm1d"]
    assert layer_count(spec.layers) == 5
