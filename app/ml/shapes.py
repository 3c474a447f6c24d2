"""Dry run on the meta device: each layer's shapes and parameters, and a training step's cost.

Every layer is checked against the rules in app/ml/layers/rules.py, then built on the
meta device and fed a meta batch, so a shape that torch would refuse at training time
is a SpecError now, naming the layer's path (model.layers[4], or
model.layers[2].layers[1] inside a residual block) and both shapes. The pre-flight check
takes the dry run and the estimate of a training step from one call, trace_network, so a
new network's layers are built and traced once for both.
"""
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from app.ml import spec as S
from app.ml.errors import SpecError
from app.ml.layers.modules import Recurrent
from app.ml.layers.registry import build_layer
from app.ml.layers.residual import build_residual
from app.ml.layers.rules import ShapeMismatch, check_input, fmt
from app.ml.layers.sizes import Shape

META_BATCH = 2  # more than 1, so batch norm in training mode accepts it
FLOAT32 = 4
# weights + gradients + optimizer state (Adam keeps two moments per weight)
BYTES_PER_PARAMETER = FLOAT32 * (1 + 1 + 2)


@dataclass(frozen=True)  # remembered by the cache below, so shared
class LayerReport:
    index: int
    type: str
    input_shape: Shape
    output_shape: Shape
    parameters: int  # a residual block's include its layers' and its projection's
    path: str = ""
    layers: list["LayerReport"] = field(default_factory=list)  # a residual block's own layers


@dataclass(frozen=True)
class NetworkTrace:
    """A network's dry run at an input shape, and what one training step at a batch size costs."""

    layers: tuple[LayerReport, ...]
    flops_per_step: int  # forward + backward of one batch
    memory_bytes: int  # training memory for one batch: see _estimate


def _build_meta(layer, shape: Shape, path: str) -> tuple[nn.Module, list[LayerReport]]:
    """``layer`` built for ``shape`` once its rules pass; a residual block's layers are traced
    first and wrapped as they are (their reports come back too)."""
    try:
        check_input(layer, shape)
    except ShapeMismatch as exc:
        raise SpecError(path, str(exc)) from None
    if layer.type != "residual":
        try:
            return build_layer(layer, shape), []
        except (RuntimeError, TypeError, ValueError, OverflowError):
            # a size torch cannot hold (out_features 10**30: "Overflow when unpacking long long")
            field = size_field(layer)
            raise SpecError(f"{path}.{field}" if field else path, f"is too large: PyTorch cannot build a "
                            f"{layer.type} layer of this size (its sizes must fit in 64 bits)") from None
    inner, modules = _trace(layer.layers, shape, f"{path}.layers")  # errors name the inner layer
    try:
        return build_residual(layer, nn.Sequential(*modules), shape, inner[-1].output_shape), inner
    except ShapeMismatch as exc:
        raise SpecError(path, str(exc)) from None


def _trace_one(index: int, layer, shape: Shape, path: str) -> tuple[LayerReport, nn.Module]:
    with torch.device("meta"):
        module, inner = _build_meta(layer, shape, path)
        try:
            out = module(torch.empty((META_BATCH, *shape)))
        except (RuntimeError, ValueError, IndexError, TypeError, OverflowError) as exc:
            # a case the rules do not foresee: still name the layer and its input
            raise SpecError(path, f"{layer.type} cannot take input {fmt(shape)}: {exc}") from None
    if out.shape[0] != META_BATCH:
        raise SpecError(path, f"{layer.type} changed the batch dimension")
    params = sum(p.numel() for p in module.parameters())
    return LayerReport(index, layer.type, shape, tuple(out.shape[1:]), params, path, inner), module


def _trace(layers, shape: Shape, prefix: str) -> tuple[list[LayerReport], list[nn.Module]]:
    reports, modules = [], []
    for i, layer in enumerate(layers):
        report, module = _trace_one(i, layer, shape, f"{prefix}[{i}]")
        reports.append(report)
        modules.append(module)
        shape = report.output_shape
    return reports, modules


def dry_run(model: S.ModelSpec, input_shape: Shape) -> list[LayerReport]:
    """Builds every layer on the meta device and pushes a meta batch through it."""
    reports, _ = _trace(model.layers, tuple(input_shape), "model.layers")
    return reports


class _Network:
    """A cache key: the network's layers (as JSON), the input shape and the batch size.

    Every submission runs the dry run and the estimate, and most repeat a network seen
    before (the same model with another optimizer, rate, seed or dataset of the same
    shape). Both are pure functions of this key, so their results are remembered; a
    network that fails raises again each time (lru_cache keeps only results).
    """

    def __init__(self, model: S.ModelSpec, input_shape: Shape, batch_size: int):
        self.model, self.input_shape, self.batch_size = model, input_shape, batch_size
        self.key = (model.model_dump_json(), input_shape, batch_size)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Network) and self.key == other.key


CACHE_SIZE = 512


def trace_network(model: S.ModelSpec, input_shape: Shape, batch_size: int) -> NetworkTrace:
    """The dry run of ``model`` at ``input_shape`` and the estimate of a training step on
    batches of ``batch_size``, remembered per network, shape and batch size."""
    return _trace_network(_Network(model, tuple(input_shape), batch_size))


@lru_cache(maxsize=CACHE_SIZE)
def _trace_network(network: _Network) -> NetworkTrace:
    # The estimate runs the layers the dry run built: building and tracing them again was a
    # third of a new network's check (plan_job for a 3-layer MLP: 7.2-7.5 -> 5.5-5.7 ms).
    reports, modules = _trace(network.model.layers, network.input_shape, "model.layers")
    flops, memory = _estimate(reports, modules, network.input_shape, network.batch_size)
    return NetworkTrace(tuple(reports), flops, memory)


def size_field(layer) -> str | None:
    """The layer's largest whole-number setting (out_features, kernel_size, ...): the one to blame
    when it is too big to build or holds too many parameters."""
    sizes = [(v, k) for k, v in layer if isinstance(v, int) and not isinstance(v, bool)]
    return max(sizes)[1] if sizes else None


def largest_layer(layers, reports) -> tuple[int, str, object] | None:
    """(parameters, path, spec) of the layer with the most parameters, inside residual blocks too."""
    best = None
    for layer, report in zip(layers, reports):
        found = largest_layer(layer.layers, report.layers) if report.layers else \
            (report.parameters, report.path, layer)
        if found is not None and (best is None or found[0] > best[0]):
            best = found
    return best


def walk(layers):
    """Every layer, depth first: a residual block, then each layer inside it."""
    for layer in layers:
        yield layer
        if layer.type == "residual":
            yield from walk(layer.layers)


def layer_count(layers) -> int:
    """How many layers there are, those inside residual blocks included, a recurrent layer's stack
    counted layer by layer (for limits: checked before anything is built, and PyTorch builds a
    stack of a million GRU layers one Python object at a time, for minutes)."""
    return sum(getattr(layer, "num_layers", 1) for layer in walk(layers))


def _storage(t: torch.Tensor) -> tuple[int, int]:
    storage = t.untyped_storage()  # a view shares its base's storage, so it is counted once
    return storage._cdata, storage.nbytes()


class _SavedBytes:
    """Bytes of the tensors autograd keeps for the backward: once per storage, weights left out."""

    def __init__(self, net: nn.Module):
        self.weights = {_storage(p)[0] for p in net.parameters()}
        self.saved: dict[int, int] = {}

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        key, nbytes = _storage(t)
        if key not in self.weights:
            self.saved[key] = nbytes
        return t

    def total(self) -> int:
        return sum(self.saved.values())


def _recurrent_costs(reports: list[LayerReport], modules, batch: int) -> tuple[int, int]:
    """(FLOPs, bytes) of the recurrent layers, by formula: they are not run on the meta device
    (see Recurrent._meta_forward). Residual blocks are searched too."""
    flops = saved = 0
    for report, module in zip(reports, modules):
        if isinstance(module, Recurrent):
            f, b = module.training_cost(batch, report.input_shape[0])
        elif report.layers:
            f, b = _recurrent_costs(report.layers, module.block, batch)
        else:
            continue
        flops, saved = flops + f, saved + b
    return flops, saved


def _estimate(reports: list[LayerReport], modules: list[nn.Module], input_shape: Shape,
              batch_size: int) -> tuple[int, int]:
    """(FLOPs of one training step, bytes of training memory) for batches of ``batch_size``.

    Measured on the meta device, so nothing is allocated and nothing computed:
    - FLOPs: torch.utils.flop_counter.FlopCounterMode over a forward pass and the
      backward of a scalar loss. It counts matrix multiplications, convolutions and
      attention (2 per multiply-add); element-wise ops and the loss are left out, as
      they are in every FLOP count in the literature. The first layer computes no
      gradient for the data, so a step is less than 3x the forward.
    - Memory: 16 bytes per parameter (float32 weights, gradients, and Adam's two
      moments: SGD without momentum needs less) plus the activations, which are the
      tensors autograd keeps for the backward pass and the output.
    """
    net = nn.Sequential(*modules)  # on the meta device, in training mode
    saved = _SavedBytes(net)
    x = torch.empty((batch_size, *input_shape), device="meta")
    with FlopCounterMode(display=False) as counter:
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            out = net(x)
        saved.pack(out)
        if out.requires_grad:  # a net without weights has no backward
            out.sum().backward()
    rnn_flops, rnn_bytes = _recurrent_costs(reports, modules, batch_size)
    params = sum(r.parameters for r in reports)
    flops = counter.get_total_flops() + rnn_flops
    return flops, params * BYTES_PER_PARAMETER + saved.total() + rnn_bytes
