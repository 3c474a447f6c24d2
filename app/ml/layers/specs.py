"""Layer specs: one pydantic model per layer ``type``; the Layer union discriminates on it."""
from typing import Annotated, Literal, Union

from pydantic import Field, PositiveInt

from app.ml.strict import StrictModel


class Linear(StrictModel):
    type: Literal["linear"]
    out_features: PositiveInt
    bias: bool = True


class ReLU(StrictModel):
    type: Literal["relu"]


class Sigmoid(StrictModel):
    type: Literal["sigmoid"]


class Tanh(StrictModel):
    type: Literal["tanh"]


class LeakyReLU(StrictModel):
    type: Literal["leaky_relu"]
    negative_slope: float = 0.01


class Softmax(StrictModel):
    type: Literal["softmax"]
    dim: int = -1


class Identity(StrictModel):
    type: Literal["identity"]


class Dropout(StrictModel):
    type: Literal["dropout"]
    p: float = Field(default=0.5, ge=0.0, lt=1.0)


class BatchNorm1d(StrictModel):
    type: Literal["batchnorm1d"]
    eps: float = Field(default=1e-5, gt=0)
    momentum: float = Field(default=0.1, gt=0, le=1)
    affine: bool = True


class Flatten(StrictModel):
    type: Literal["flatten"]
    start_dim: int = Field(default=1, ge=1)
    end_dim: int = -1


Layer = Annotated[
    Union[Linear, ReLU, Sigmoid, Tanh, LeakyReLU, Softmax, Identity, Dropout, BatchNorm1d, Flatten],
    Field(discriminator="type"),
]


