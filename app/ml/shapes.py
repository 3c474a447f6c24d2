"""Dry run on the meta device: each layer's shapes and parameters, no memory used."""
from dataclasses import dataclass

import torch
from torch import nn

from app.ml import spec as S
from app.ml.errors import SpecError

Shape = tuple[int, ...]


@dataclass
class LayerReport:
    index: int
    type: str
    input_shape: Shape
    output_shape: Shape
    parameters: int


def _fmt(shape: Shape) -> str:
    return "(" + ", ".join(["batch", *map(str, shape)]) + ")"


def _check_input(layer: S.Layer, shape: Shape, path: str) -> None:
    """Turns the input-shape rules torch enforces deep inside into plain messages."""
    if layer.type == "batchnorm1d" and len(shape) not in (1, 2):
        raise SpecError(path, f"batchnorm1d expects 2-D (batch, features) or 3-D "
                              f"(batch, channels, length) input, got {_fmt(shape)}")
    if layer.type == "flatten":
        ndim = len(shape) + 1
        end = layer.end_dim if layer.end_dim >= 0 else ndim + layer.end_dim
        if layer.start_dim >= ndim or end >= ndim or end < 0:
            raise SpecError(path, f"flatten dims {layer.start_dim}..{layer.end_dim} "
                                  f"are out of range for input {_fmt(shape)}")
    if layer.type == "softmax" and not -(len(shape) + 1) <= layer.dim <= len(shape):
        raise SpecError(path, f"softmax dim {layer.dim} is out of range for input {_fmt(shape)}")
    if layer.type == "softmax" and layer.dim in (0, -(len(shape) + 1)):
        raise SpecError(path, "softmax over dim 0 mixes the samples of a batch; use a feature dim")


def dry_run(model: S.ModelSpec, input_shape: Shape) -> list[LayerReport]:
    """Builds every layer on the meta device and pushes a meta batch through it."""
    from app.ml.layers.registry import build_layer

    reports: list[LayerReport] = []
    shape = tuple(input_shape)
    for i, layer in enumerate(model.layers):
        path = f"model.layers[{i}]"
        _check_input(layer, shape, path)
        with torch.device("meta"):
            module = build_layer(layer, shape)
            try:
                out = module(torch.empty((2, *shape)))
            except (RuntimeError, ValueError, IndexError) as exc:
                raise SpecError(path, f"{layer.type} cannot take input {_fmt(shape)}: {exc}")
        out_shape = tuple(out.shape[1:])
        if out.shape[0] != 2:
            raise SpecError(path, f"{layer.type} changed the batch dimension")
        params = sum(p.numel() for p in module.parameters())
        reports.append(LayerReport(i, layer.type, shape, out_shape, params))
        shape = out_shape
    return reports


def layer_input_shapes(model: S.ModelSpec, input_shape: Shape) -> list[Shape]:
    return [r.input_shape for r in dry_run(model, input_shape)]


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
