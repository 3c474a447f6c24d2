"""Spec -> torch (app/ml/build.py): layers, shape inference, seeded init, losses."""
import math
import typing

import pytest
import torch
from torch import nn

from app.ml import spec as S
from app.ml.build import LOSS_BUILDERS, build_loss, build_model
from app.ml.layers.registry import LAYER_BUILDERS, build_layer
from app.ml.shapes import dry_run, trace_network


def model_spec(*layers) -> S.ModelSpec:
    return S.ModelSpec.model_validate({"layers": list(layers)})


def spec_layer_types() -> set[str]:
    union = typing.get_args(typing.get_args(S.Layer)[0])
    return {typing.get_args(cls.model_fields["type"].annotation)[0] for cls in union}


# (layer, sample input shape, expected torch class, expected attributes, expected output shape)
LAYER_CASES = [
    ({"type": "linear", "out_features": 3}, (5,), nn.Linear,
     {"in_features": 5, "out_features": 3}, (3,)),
    ({"type": "linear", "out_features": 3, "bias": False}, (4, 5), nn.Linear,
     {"in_features": 5, "out_features": 3, "bias": None}, (4, 3)),
    ({"type": "relu"}, (5,), nn.ReLU, {}, (5,)),
    ({"type": "sigmoid"}, (2, 3), nn.Sigmoid, {}, (2, 3)),
    ({"type": "tanh"}, (5,), nn.Tanh, {}, (5,)),
    ({"type": "leaky_relu", "negative_slope": 0.2}, (5,), nn.LeakyReLU,
     {"negative_slope": 0.2}, (5,)),
    ({"type": "softmax"}, (4, 5), nn.Softmax, {"dim": -1}, (4, 5)),
    ({"type": "softmax", "dim": 1}, (4, 5), nn.Softmax, {"dim": 1}, (4, 5)),
    ({"type": "identity"}, (2, 3, 4), nn.Identity, {}, (2, 3, 4)),
    ({"type": "dropout", "p": 0.3}, (5,), nn.Dropout, {"p": 0.3}, (5,)),
    ({"type": "batchnorm1d"}, (6,), nn.BatchNorm1d,
     {"num_features": 6, "eps": 1e-5, "momentum": 0.1, "affine": True}, (6,)),
    ({"type": "batchnorm1d", "eps": 1e-3, "momentum": 0.5, "affine": False}, (3, 7), nn.BatchNorm1d,
     {"num_features": 3, "eps": 1e-3, "momentum": 0.5, "affine": False, "weight": None}, (3, 7)),
    ({"type": "flatten"}, (2, 3, 4), nn.Flatten, {"start_dim": 1, "end_dim": -1}, (24,)),
    ({"type": "flatten", "start_dim": 2}, (2, 3, 4), nn.Flatten, {"start_dim": 2}, (2, 12)),
    ({"type": "flatten", "start_dim": 1, "end_dim": 2}, (2, 3, 4), nn.Flatten, {"end_dim": 2}, (6, 4)),
]


def test_cases_cover_every_builder_and_every_spec_layer():
    from tests.ml.test_layers_build import NEW_LAYER_CASES  # the layers added with app/ml/layers

    covered = {case[0]["type"] for case in LAYER_CASES + NEW_LAYER_CASES}
    # a residual block wraps built layers (app/ml/layers/residual.py), so it has no builder entry
    assert covered == set(LAYER_BUILDERS) | {"residual"} == spec_layer_types()
    assert "residual" not in LAYER_BUILDERS


@pytest.mark.parametrize("layer, in_shape, cls, attrs, out_shape", LAYER_CASES,
                         ids=[f"{c[0]['type']}-{i}" for i, c in enumerate(LAYER_CASES)])
def test_layer_builds_and_dry_run_matches_a_real_forward(layer, in_shape, cls, attrs, out_shape):
    spec = model_spec(layer)
    module = build_layer(spec.layers[0], in_shape)
    assert type(module) is cls
    for name, value in attrs.items():
        if value is None:
            assert getattr(module, name) is None
        else:
            assert getattr(module, name) == value, name
    # real parameters live on the CPU, not on the dry run's meta device
    assert all(p.device.type == "cpu" for p in module.parameters())

    (report,) = dry_run(spec, in_shape)
    torch.manual_seed(0)
    out = module(torch.randn(5, *in_shape))
    assert report.index == 0 and report.type == layer["type"]
    assert report.input_shape == in_shape
    assert report.output_shape == tuple(out.shape[1:]) == out_shape
    assert out.shape[0] == 5
    assert report.parameters == sum(p.numel() for p in module.parameters())


def test_whole_model_dry_run_matches_forward_layer_by_layer():
    spec = model_spec(
        {"type": "flatten"}, {"type": "linear", "out_features": 10}, {"type": "batchnorm1d"},
        {"type": "leaky_relu"}, {"type": "dropout", "p": 0.1}, {"type": "linear", "out_features": 4},
        {"type": "tanh"}, {"type": "linear", "out_features": 2, "bias": False}, {"type": "softmax"},
    )
    shape = (2, 3, 4)
    torch.manual_seed(1)
    model = build_model(spec, shape)
    reports = dry_run(spec, shape)
    h = torch.randn(7, *shape)
    for report, module in zip(reports, model, strict=True):
        assert report.input_shape == tuple(h.shape[1:])
        h = module(h)
        assert report.output_shape == tuple(h.shape[1:])
        assert report.parameters == sum(p.numel() for p in module.parameters())
    assert h.shape == (7, 2)


def test_linear_in_features_are_inferred_from_the_previous_layer():
    spec = model_spec({"type": "linear", "out_features": 7}, {"type": "relu"},
                      {"type": "linear", "out_features": 2})
    model = build_model(spec, (5,))
    assert [m.in_features for m in model if isinstance(m, nn.Linear)] == [5, 7]
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [7, 2]
    assert [r.input_shape for r in dry_run(spec, (5,))] == [(5,), (7,), (7,)]


def test_linear_after_flatten_of_3d_features_takes_the_product():
    spec = model_spec({"type": "flatten"}, {"type": "linear", "out_features": 7},
                      {"type": "relu"}, {"type": "linear", "out_features": 2})
    model = build_model(spec, (2, 3, 4))
    assert model[1].in_features == 24 and model[3].in_features == 7
    assert model(torch.randn(3, 2, 3, 4)).shape == (3, 2)
    assert [r.input_shape for r in dry_run(spec, (2, 3, 4))] == [(2, 3, 4), (24,), (7,), (7,)]


def test_linear_after_partial_flatten_uses_the_last_dim():
    spec = model_spec({"type": "flatten", "start_dim": 2}, {"type": "linear", "out_features": 5})
    model = build_model(spec, (2, 3, 4))
    assert model[1].in_features == 12
    assert model(torch.randn(3, 2, 3, 4)).shape == (3, 2, 5)


def test_batchnorm_num_features_follow_previous_linear():
    spec = model_spec({"type": "linear", "out_features": 9}, {"type": "batchnorm1d"})
    model = build_model(spec, (4,))
    assert model[1].num_features == 9


# ---- seeded initialization equals a hand-written nn.Sequential ----------------------

ARCHITECTURES = [
    (
        [{"type": "linear", "out_features": 16}, {"type": "relu"},
         {"type": "linear", "out_features": 3}],
        (4,),
        lambda: nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)),
    ),
    (
        [{"type": "flatten"}, {"type": "linear", "out_features": 8, "bias": False},
         {"type": "batchnorm1d", "momentum": 0.3}, {"type": "dropout", "p": 0.2},
         {"type": "tanh"}, {"type": "linear", "out_features": 1}],
        (2, 3, 4),
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(24, 8, bias=False),
                              nn.BatchNorm1d(8, momentum=0.3), nn.Dropout(0.2), nn.Tanh(),
                              nn.Linear(8, 1)),
    ),
    (
        [{"type": "linear", "out_features": 5}, {"type": "sigmoid"},
         {"type": "linear", "out_features": 5}, {"type": "leaky_relu", "negative_slope": 0.1},
         {"type": "linear", "out_features": 2}, {"type": "softmax"}],
        (3,),
        lambda: nn.Sequential(nn.Linear(3, 5), nn.Sigmoid(), nn.Linear(5, 5), nn.LeakyReLU(0.1),
                              nn.Linear(5, 2), nn.Softmax(dim=-1)),
    ),
]


@pytest.mark.parametrize("seed", [0, 1234, 2**40 + 7])
@pytest.mark.parametrize("layers, shape, hand_written", ARCHITECTURES, ids=["mlp", "bn-flatten", "deep"])
def test_seeded_build_equals_hand_written_sequential(layers, shape, hand_written, seed):
    spec = model_spec(*layers)
    torch.manual_seed(seed)
    built = build_model(spec, shape)
    after_built = torch.random.get_rng_state()
    torch.manual_seed(seed)
    expected = hand_written()
    after_expected = torch.random.get_rng_state()

    assert [type(m) for m in built] == [type(m) for m in expected]
    built_state, expected_state = built.state_dict(), expected.state_dict()
    assert list(built_state) == list(expected_state)
    for name in expected_state:
        assert torch.equal(built_state[name], expected_state[name]), name
    # the build consumed exactly as many random numbers as the hand-written model did,
    # so later draws (dropout, shuffling from the global generator) line up too
    assert torch.equal(after_built, after_expected)


def test_different_seeds_give_different_weights():
    spec = model_spec(*ARCHITECTURES[0][0])
    torch.manual_seed(0)
    a = build_model(spec, (4,))
    torch.manual_seed(1)
    b = build_model(spec, (4,))
    assert not torch.equal(a[0].weight, b[0].weight)


def test_dry_run_draws_nothing_from_the_global_generator():
    spec = model_spec(*ARCHITECTURES[1][0])
    torch.manual_seed(42)
    before = torch.random.get_rng_state()
    dry_run(spec, (2, 3, 4))
    trace_network(spec, (2, 3, 4), 8)
    # nor do the layers with initializers of their own (attention, embedding, residual projections)
    dry_run(model_spec({"type": "embedding", "num_embeddings": 9, "embedding_dim": 8,
                        "init": {"type": "normal"}},
                       {"type": "lstm", "hidden_size": 8, "output": "sequence"},
                       {"type": "attention", "num_heads": 2},
                       {"type": "residual", "layers": [{"type": "linear", "out_features": 4}]}), (5,))
    assert torch.equal(torch.random.get_rng_state(), before)


def test_build_does_not_depend_on_dry_run_rng_use(monkeypatch):
    """Even if the meta-device dry run drew from the global generator, the built
    weights would have to equal the hand-written model's; fail if they do not."""
    import app.ml.build as build

    real_dry_run = build.dry_run

    def greedy_dry_run(model, input_shape):
        torch.rand(1000)  # what a dry run that consumed RNG would do
        return real_dry_run(model, input_shape)

    layers, shape, hand_written = ARCHITECTURES[0]
    spec = model_spec(*layers)
    torch.manual_seed(3)
    expected = hand_written()
    torch.manual_seed(3)
    with monkeypatch.context() as m:
        m.setattr(build, "dry_run", greedy_dry_run)
        built_with_greedy = build_model(spec, shape)
    torch.manual_seed(3)
    built = build_model(spec, shape)
    # The real build must match; the one after a greedy dry run shows the test has teeth.
    for (name, p), q in zip(built.state_dict().items(), expected.state_dict().values()):
        assert torch.equal(p, q), name
    assert not torch.equal(built_with_greedy[0].weight, expected[0].weight)


def test_built_model_is_on_cpu_and_trainable():
    spec = model_spec(*ARCHITECTURES[1][0])
    model = build_model(spec, (2, 3, 4))
    params = list(model.parameters())
    assert params and all(p.device.type == "cpu" and p.requires_grad for p in params)
    assert all(not p.is_meta for p in params)
    for b in model.buffers():
        assert b.device.type == "cpu"
    model(torch.randn(4, 2, 3, 4)).sum().backward()
    assert all(p.grad is not None for p in params)


# ---- losses ---------------------------------------------------------------------

def test_loss_builders_cover_the_spec():
    tags = {typing.get_args(m.model_fields["type"].annotation)[0]
            for m in typing.get_args(typing.get_args(S.Loss)[0])}
    assert set(LOSS_BUILDERS) == tags


@pytest.mark.parametrize("loss_type, cls", [
    ("mse", nn.MSELoss), ("l1", nn.L1Loss), ("cross_entropy", nn.CrossEntropyLoss),
    ("bce_with_logits", nn.BCEWithLogitsLoss),
])
def test_each_loss_maps_to_its_torch_class(loss_type, cls):
    loss = build_loss(S.loss_spec(loss_type))
    assert type(loss) is cls
    assert loss.reduction == "mean"


def test_losses_compute_the_documented_quantities():
    out = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    tgt = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    mse = build_loss(S.loss_spec("mse"))(out, tgt)
    l1 = build_loss(S.loss_spec("l1"))(out, tgt)
    bce = build_loss(S.loss_spec("bce_with_logits"))(out, tgt)
    assert math.isclose(mse.item(), ((0.5 - 1) ** 2 + 1 + 1 + 0.75 ** 2) / 4, rel_tol=1e-6)
    assert math.isclose(l1.item(), (0.5 + 1 + 1 + 0.75) / 4, rel_tol=1e-6)
    sig = torch.sigmoid(out)
    want_bce = -(tgt * sig.log() + (1 - tgt) * (1 - sig).log()).mean()
    assert math.isclose(bce.item(), want_bce.item(), rel_tol=1e-5)
    labels = torch.tensor([1, 0])
    ce = build_loss(S.loss_spec("cross_entropy"))(out, labels)
    want_ce = -(out.log_softmax(dim=1)[torch.arange(2), labels]).mean()
    assert math.isclose(ce.item(), want_ce.item(), rel_tol=1e-6)
