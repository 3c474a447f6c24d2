"""After torch.manual_seed, the built model equals the same network written by hand in PyTorch.

Same parameters, same buffers, same forward, and the same number of draws from the
global generator, so dropout and anything drawn later line up (docs/equivalence.md).
"""
import pytest
import torch
from torch import nn

from app.ml import spec as S
from app.ml.build import build_model


def build(layers, shape, seed):
    torch.manual_seed(seed)
    model = build_model(S.ModelSpec.model_validate({"layers": layers}), shape)
    return model, torch.random.get_rng_state()


def by_hand(make, seed):
    torch.manual_seed(seed)
    modules = make()
    return modules, torch.random.get_rng_state()


def assert_same_tensors(built: nn.Module, hand: nn.Module):
    ours = list(built.parameters()) + list(built.buffers())
    theirs = list(hand.parameters()) + list(hand.buffers())
    assert [t.shape for t in ours] == [t.shape for t in theirs]
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


CNN = [
    {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "batchnorm2d"},
    {"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2},
    {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "stride": 2, "bias": False},
    {"type": "elu"}, {"type": "adaptive_avgpool", "output_size": 1}, {"type": "flatten"},
    {"type": "dropout", "p": 0.2}, {"type": "linear", "out_features": 3}, {"type": "log_softmax"},
]
CONV1D = [
    {"type": "conv1d", "out_channels": 4, "kernel_size": 3, "padding": "same"}, {"type": "gelu"},
    {"type": "avgpool1d", "kernel_size": 2}, {"type": "flatten"}, {"type": "layernorm"},
    {"type": "reshape", "shape": [2, -1]}, {"type": "linear", "out_features": 1},
]


@pytest.mark.parametrize("seed", [0, 99])
@pytest.mark.parametrize("layers, shape, hand", [
    (CNN, (3, 12, 12), lambda: nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2, bias=False), nn.ELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(0.2), nn.Linear(16, 3), nn.LogSoftmax(dim=-1))),
    (CONV1D, (2, 10), lambda: nn.Sequential(
        nn.Conv1d(2, 4, 3, padding="same"), nn.GELU(), nn.AvgPool1d(2), nn.Flatten(), nn.LayerNorm(20),
        nn.Unflatten(1, (2, 10)), nn.Linear(10, 1))),
], ids=["cnn", "conv1d"])
def test_plain_layers_equal_a_hand_written_sequential(layers, shape, hand, seed):
    built, rng_built = build(layers, shape, seed)
    expected, rng_hand = by_hand(hand, seed)
    assert [type(m).__name__ for m in built][:5] == [type(m).__name__ for m in expected][:5]
    assert_same_tensors(built, expected)
    assert torch.equal(rng_built, rng_hand)
    built.eval(), expected.eval()
    x = torch.randn(4, *shape)
    assert torch.equal(built(x), expected(x))


SEQUENCE = [
    {"type": "embedding", "num_embeddings": 20, "embedding_dim": 8, "padding_idx": 0},
    {"type": "lstm", "hidden_size": 16, "num_layers": 2, "dropout": 0.1, "output": "sequence"},
    {"type": "attention", "num_heads": 4}, {"type": "layernorm"},
    {"type": "gru", "hidden_size": 8, "bidirectional": True},
    {"type": "linear", "out_features": 1},
]


class HandSequence(nn.Module):
    """What a user writes for SEQUENCE with torch alone."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8, padding_idx=0)
        self.lstm = nn.LSTM(8, 16, num_layers=2, dropout=0.1, batch_first=True)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.norm = nn.LayerNorm(16)
        self.gru = nn.GRU(16, 8, bidirectional=True, batch_first=True)
        self.head = nn.Linear(16, 1)

    def forward(self, ids):
        h, _ = self.lstm(self.emb(ids.long()))
        h = self.norm(self.attn(h, h, h)[0])
        _, h_n = self.gru(h)
        return self.head(torch.cat([h_n[-2], h_n[-1]], dim=1))


def test_sequence_layers_equal_hand_written_modules():
    built, rng_built = build(SEQUENCE, (6,), 5)
    expected, rng_hand = by_hand(HandSequence, 5)
    assert_same_tensors(built, expected)
    assert torch.equal(rng_built, rng_hand)
    built.eval(), expected.eval()
    ids = torch.randint(0, 20, (3, 6)).float()
    assert torch.allclose(built(ids), expected(ids), atol=1e-6)


def test_residual_blocks_equal_hand_written_blocks_and_projections():
    layers = [
        {"type": "residual", "layers": [
            {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1},
            {"type": "batchnorm2d"}, {"type": "relu"},
            {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}]},
        {"type": "residual", "layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 1}]},
        {"type": "flatten"},
        {"type": "residual", "layers": [{"type": "linear", "out_features": 16}, {"type": "relu"},
                                        {"type": "linear", "out_features": 10}]},
    ]

    def hand():
        block1 = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                               nn.Conv2d(8, 8, 3, padding=1))
        short1 = nn.Conv2d(4, 8, 1, stride=2, bias=False)  # built after its block
        block2 = nn.Conv2d(8, 8, 1)                        # identity shortcut: nothing drawn
        block3 = nn.Sequential(nn.Linear(128, 16), nn.ReLU(), nn.Linear(16, 10))
        short3 = nn.Linear(128, 10, bias=False)
        return nn.ModuleList([block1, short1, block2, block3, short3])

    built, rng_built = build(layers, (4, 8, 8), 11)
    expected, rng_hand = by_hand(hand, 11)
    assert_same_tensors(built, expected)
    assert torch.equal(rng_built, rng_hand)
    b1, s1, b2, b3, s3 = expected
    built.eval(), expected.eval()
    x = torch.randn(2, 4, 8, 8)
    h = b1(x) + s1(x)
    h = (b2(h) + h).flatten(1)
    assert torch.allclose(built(x), b3(h) + s3(h), atol=1e-6)
    assert type(built[1].shortcut) is nn.Identity
