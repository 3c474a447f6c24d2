"""Pre-flight estimates (app/ml/shapes.py trace_network): FLOPs and memory of one training step."""
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from app.ml import spec as S
from app.ml.build import build_model
from app.ml.errors import SpecError
from app.ml.shapes import BYTES_PER_PARAMETER, trace_network


def model_spec(*layers) -> S.ModelSpec:
    return S.ModelSpec.model_validate({"layers": list(layers)})


def estimate(spec: S.ModelSpec, shape, batch: int) -> tuple[int, int]:
    traced = trace_network(spec, shape, batch)
    return traced.flops_per_step, traced.memory_bytes


def real_step(spec: S.ModelSpec, shape, batch: int) -> tuple[int, int]:
    """FLOPs counted on a real CPU step, and the bytes autograd really saved (by data pointer)."""
    torch.manual_seed(0)
    model = build_model(spec, shape)
    weights = {p.data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        if t.data_ptr() not in weights:
            saved[t.data_ptr()] = t.untyped_storage().nbytes()
        return t

    x = torch.randn(batch, *shape)
    with FlopCounterMode(display=False) as counter:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        pack(out)
        out.sum().backward()
    return counter.get_total_flops(), sum(saved.values())


def test_one_linear_layer_is_exact():
    b, n_in, n_out = 8, 10, 20
    flops, memory = estimate(model_spec({"type": "linear", "out_features": n_out}), (n_in,), b)
    forward = 2 * b * n_in * n_out
    assert flops == forward + forward  # backward: the weight's gradient only, the data needs none
    params = n_in * n_out + n_out
    assert memory == params * BYTES_PER_PARAMETER + 4 * b * (n_in + n_out)  # + input and output


def test_two_linear_layers_backprop_into_the_hidden_layer():
    b = 4
    flops, _ = estimate(model_spec({"type": "linear", "out_features": 6}, {"type": "relu"},
                                   {"type": "linear", "out_features": 2}), (3,), b)
    first, second = 2 * b * 3 * 6, 2 * b * 6 * 2
    assert flops == 2 * first + 3 * second


def test_conv2d_forward_flops_follow_the_textbook_formula():
    b, c_in, c_out, k, side = 2, 3, 8, 3, 10
    flops, _ = estimate(model_spec({"type": "conv2d", "out_channels": c_out, "kernel_size": k}),
                        (c_in, side, side), b)
    out_side = side - k + 1
    forward = 2 * b * c_out * out_side * out_side * c_in * k * k
    assert flops == 2 * forward


NETS = [
    ([{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"},
      {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"}, {"type": "linear", "out_features": 3}],
     (1, 8, 8)),
    ([{"type": "linear", "out_features": 16}, {"type": "attention", "num_heads": 4}, {"type": "layernorm"},
      {"type": "flatten"}, {"type": "linear", "out_features": 1}], (6, 4)),
    ([{"type": "residual", "layers": [{"type": "linear", "out_features": 32}, {"type": "relu"},
                                      {"type": "linear", "out_features": 16}]},
      {"type": "batchnorm1d"}, {"type": "linear", "out_features": 2}], (8,)),
]


@pytest.mark.parametrize("layers, shape", NETS, ids=["cnn", "attention", "residual"])
def test_estimate_equals_a_real_cpu_step(layers, shape):
    spec = model_spec(*layers)
    flops, memory = estimate(spec, shape, 16)
    real_flops, real_saved = real_step(spec, shape, 16)
    params = sum(p.numel() for p in build_model(spec, shape).parameters())
    if layers[1]["type"] == "attention":
        # On the CPU, attention runs a fused kernel the counter has no formula for; the meta
        # run counts its two matmuls (scores and weighted values): 2*b*seq*seq*embed each,
        # and twice that for their backward.
        seq, embed = shape[0], 16
        real_flops += 3 * 2 * (2 * 16 * seq * seq * embed)
    assert flops == real_flops
    # attention's fused CPU kernel saves a little more than the meta run's plain matmuls
    tolerance = 0.25 if layers[1]["type"] == "attention" else 0.05
    assert memory - params * BYTES_PER_PARAMETER == pytest.approx(real_saved, rel=tolerance)


@pytest.mark.parametrize("kind, bidirectional, layers", [
    ("lstm", False, 1), ("gru", True, 2), ("rnn", False, 2)])
def test_recurrent_estimates_by_formula_are_near_pytorchs_own(kind, bidirectional, layers):
    spec = model_spec({"type": kind, "hidden_size": 16, "num_layers": layers,
                       "bidirectional": bidirectional, "output": "sequence"})
    flops, memory = estimate(spec, (12, 3), 8)
    # FLOPs: PyTorch's step-by-step decomposition, run on the meta device (the CPU's fused
    # LSTM kernel is invisible to the counter). The formula counts a full backward for the
    # first layer too: a little over, never under.
    rnn = build_model(spec, (12, 3))[0].rnn.to("meta")
    x = torch.empty(8, 12, 3, device="meta")
    with FlopCounterMode(display=False) as counter:
        rnn(x)[0].sum().backward()
    assert counter.get_total_flops() <= flops <= 1.25 * counter.get_total_flops()
    # memory: what a real CPU step saves for its backward
    _, real_saved = real_step(spec, (12, 3), 8)
    params = sum(p.numel() for p in build_model(spec, (12, 3)).parameters())
    assert 0.75 * real_saved <= memory - params * BYTES_PER_PARAMETER <= 1.5 * real_saved


def test_flops_and_activations_grow_with_the_batch():
    spec = model_spec(*NETS[0][0])
    f1, m1 = estimate(spec, (1, 8, 8), 10)
    f2, m2 = estimate(spec, (1, 8, 8), 20)
    assert f2 == 2 * f1
    params_bytes = 2 * m1 - m2
    assert m2 - params_bytes == 2 * (m1 - params_bytes)


def test_a_net_without_weights_has_no_flops():
    flops, memory = estimate(model_spec({"type": "flatten"}, {"type": "relu"}), (2, 3), 4)
    assert flops == 0 and memory == 4 * 4 * 6  # its output: nothing is saved for a backward


def test_estimate_refuses_what_the_dry_run_refuses():
    with pytest.raises(SpecError) as info:
        estimate(model_spec({"type": "conv2d", "out_channels": 2, "kernel_size": 3}), (16,), 4)
    assert info.value.field == "model.layers[0]"


def test_estimate_draws_nothing_and_allocates_nothing_real():
    spec = model_spec({"type": "lstm", "hidden_size": 512, "output": "sequence"},
                      {"type": "linear", "out_features": 4096})
    torch.manual_seed(1)
    before = torch.random.get_rng_state()
    flops, memory = estimate(spec, (1000, 512), 4096)  # ~tens of GB if it were real
    assert memory > 10 * 2**30 and flops > 10**12
    assert torch.equal(torch.random.get_rng_state(), before)


def test_meta_forward_of_a_recurrent_layer_keeps_the_graph_connected():
    # estimate() relies on gradients flowing through the recurrent layer's meta stand-in
    spec = model_spec({"type": "linear", "out_features": 4}, {"type": "gru", "hidden_size": 3})
    flops, _ = estimate(spec, (5, 2), 2)
    linear_forward = 2 * 2 * 5 * 2 * 4
    gru_forward = 2 * 2 * 5 * 3 * 3 * (4 + 3)
    assert flops == 2 * linear_forward + 3 * gru_forward
    assert isinstance(build_model(spec, (5, 2))[1].rnn, nn.GRU)



def test_recurrent_layers_inside_residual_blocks_are_counted():
    lstm = {"type": "lstm", "hidden_size": 4, "output": "sequence"}
    alone, _ = estimate(model_spec(lstm), (6, 4), 2)
    nested, _ = estimate(model_spec({"type": "residual", "layers": [lstm]}), (6, 4), 2)
    assert alone > 0 and nested == alone  # same shape: identity shortcut, nothing else to count
