"""Activation specs: no weights, shape in = shape out; defaults are PyTorch's own."""
from typing import Literal

from app.ml.strict import StrictModel


class ReLU(StrictModel):
    type: Literal["relu"]


class LeakyReLU(StrictModel):
    type: Literal["leaky_relu"]
    negative_slope: float = 0.01


class ELU(StrictModel):
    type: Literal["elu"]
    alpha: float = 1.0


class GELU(StrictModel):
    type: Literal["gelu"]
    approximate: Literal["none", "tanh"] = "none"


class Sigmoid(StrictModel):
    type: Literal["sigmoid"]


class Tanh(StrictModel):
    type: Literal["tanh"]


class Softmax(StrictModel):
    type: Literal["softmax"]
    dim: int = -1  # counted with the batch dim, as in PyTorch


class LogSoftmax(StrictModel):
    type: Literal["log_softmax"]
    dim: int = -1


class Identity(StrictModel):
    type: Literal["identity"]

