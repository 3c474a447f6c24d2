"""Weight initialization: the ``init`` spec of a layer (or the model's default) and applying it.

Without a scheme a layer keeps PyTorch's own initialization. With one, the layer is
first built as PyTorch builds it (drawing what PyTorch draws), then every weight
matrix/kernel is re-drawn with the scheme and every bias is set to zero, in the
order of ``module.named_parameters()``. So a seeded job equals a script that does
``layer = nn.Linear(...); nn.init.xavier_uniform_(layer.weight); nn.init.zeros_(layer.bias)``
layer after layer, in spec order.
"""
from typing import Annotated, Literal, Union

import torch
from pydantic import Field
from torch import nn

from app.ml.strict import StrictModel

# The gains torch.nn.init.calculate_gain knows that make sense for a hidden layer.
Nonlinearity = Literal["linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


class XavierUniform(StrictModel):
    type: Literal["xavier_uniform"]
    gain: float = Field(default=1.0, gt=0)


class XavierNormal(StrictModel):
    type: Literal["xavier_normal"]
    gain: float = Field(default=1.0, gt=0)


class KaimingUniform(StrictModel):
    type: Literal["kaiming_uniform"]
    a: float = Field(default=0.0, ge=0)  # negative slope, used only with leaky_relu
    mode: Literal["fan_in", "fan_out"] = "fan_in"
    nonlinearity: Nonlinearity = "leaky_relu"


class KaimingNormal(StrictModel):
    type: Literal["kaiming_normal"]
    a: float = Field(default=0.0, ge=0)
    mode: Literal["fan_in", "fan_out"] = "fan_in"
    nonlinearity: Nonlinearity = "leaky_relu"


class Normal(StrictModel):
    type: Literal["normal"]
    mean: float = 0.0
    std: float = Field(default=1.0, gt=0)


class Zeros(StrictModel):
    type: Literal["zeros"]


Init = Annotated[
    Union[XavierUniform, XavierNormal, KaimingUniform, KaimingNormal, Normal, Zeros],
    Field(discriminator="type"),
]


def _fill(weight, scheme) -> None:
    t = scheme.type
    if t == "xavier_uniform":
        nn.init.xavier_uniform_(weight, gain=scheme.gain)
    elif t == "xavier_normal":
        nn.init.xavier_normal_(weight, gain=scheme.gain)
    elif t == "kaiming_uniform":
        nn.init.kaiming_uniform_(weight, a=scheme.a, mode=scheme.mode, nonlinearity=scheme.nonlinearity)
    elif t == "kaiming_normal":
        nn.init.kaiming_normal_(weight, a=scheme.a, mode=scheme.mode, nonlinearity=scheme.nonlinearity)
    elif t == "normal":
        nn.init.normal_(weight, mean=scheme.mean, std=scheme.std)
    else:
        nn.init.zeros_(weight)


def apply_init(module: nn.Module, scheme) -> None:
    """Re-initializes ``module``'s weights with ``scheme`` and zeroes its biases, in parameter order."""
    for name, param in module.named_parameters():
        if "bias" in name.rsplit(".", 1)[-1]:  # bias, bias_ih_l0, in_proj_bias
            nn.init.zeros_(param)
        elif param.dim() >= 2:  # fan-in/fan-out need a matrix or a kernel
            _fill(param, scheme)
    # nn.Embedding keeps its padding row at zero; a re-draw must not undo that.
    for sub in module.modules():
        if isinstance(sub, nn.Embedding) and sub.padding_idx is not None:
            with torch.no_grad():
                sub.weight[sub.padding_idx].fill_(0)
