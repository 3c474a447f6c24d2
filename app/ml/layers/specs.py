"""Layer specs: one pydantic model per layer ``type``; the Layer union discriminates on it.

Field names and defaults are PyTorch's own. Input sizes (in_features, in_channels,
input_size, embed_dim, num_features, normalized_shape) are never given: they are
inferred from the dataset and the previous layer. Rules that need the input shape
live in rules.py; the ones here need only the spec itself.
"""
from typing import Annotated, Literal, Union

from pydantic import Field, PositiveInt, ValidationInfo, field_validator

from app.ml.layers.activations import (ELU, GELU, Identity, LeakyReLU, LogSoftmax, ReLU, Sigmoid,
                                       Softmax, Tanh)
from app.ml.layers.init import Init
from app.ml.layers.sizes import Pad1, Pad2, PoolPad1, PoolPad2, Size1, Size2, as_tuple
from app.ml.strict import StrictModel

MAX_NESTING = 8  # residual blocks inside residual blocks; deeper is a mistake, not a model

__all__ = ["Layer", "Linear", "Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d",
           "AdaptiveAvgPool", "Flatten", "Reshape", "RNN", "LSTM", "GRU", "Embedding", "BatchNorm1d",
           "BatchNorm2d", "LayerNorm", "Dropout", "Residual", "Attention", "ReLU", "LeakyReLU", "ELU",
           "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Identity"]


class Linear(StrictModel):
    type: Literal["linear"]
    out_features: PositiveInt
    bias: bool = True
    init: Init | None = None


# ---- convolution and pooling ------------------------------------------------------

class _Conv(StrictModel):
    type: str
    out_channels: PositiveInt
    kernel_size: Size1
    stride: Size1 = 1
    padding: Pad1 = 0
    dilation: Size1 = 1
    groups: PositiveInt = 1
    bias: bool = True
    init: Init | None = None

    @field_validator("padding")
    @classmethod
    def _same_needs_stride_1(cls, padding, info: ValidationInfo):
        if padding == "same" and any(s != 1 for s in as_tuple(info.data.get("stride", 1), 2)):
            raise ValueError("'same' padding needs stride 1 (PyTorch refuses it for strided "
                             "convolutions); give the padding as a number")
        return padding

    @field_validator("groups")
    @classmethod
    def _groups_divide_out_channels(cls, groups: int, info: ValidationInfo) -> int:
        out = info.data.get("out_channels")
        if out is not None and out % groups:
            raise ValueError(f"groups={groups} must divide out_channels={out}")
        return groups


class Conv1d(_Conv):
    type: Literal["conv1d"]


class Conv2d(_Conv):
    type: Literal["conv2d"]
    kernel_size: Size2
    stride: Size2 = 1
    padding: Pad2 = 0
    dilation: Size2 = 1


class _Pool(StrictModel):
    type: str
    kernel_size: Size1
    stride: Size1 | None = None  # PyTorch's default: the kernel size
    padding: PoolPad1 = 0

    @field_validator("padding")
    @classmethod
    def _padding_at_most_half_the_kernel(cls, padding, info: ValidationInfo):
        kernel = info.data.get("kernel_size")
        if kernel is not None and any(p > k // 2 for p, k in zip(as_tuple(padding, 2), as_tuple(kernel, 2))):
            raise ValueError(f"must be at most half the kernel_size {kernel} (PyTorch's rule)")
        return padding


class MaxPool1d(_Pool):
    type: Literal["maxpool1d"]


class AvgPool1d(_Pool):
    type: Literal["avgpool1d"]


class MaxPool2d(_Pool):
    type: Literal["maxpool2d"]
    kernel_size: Size2
    stride: Size2 | None = None
    padding: PoolPad2 = 0


class AvgPool2d(MaxPool2d):
    type: Literal["avgpool2d"]


class AdaptiveAvgPool(StrictModel):
    type: Literal["adaptive_avgpool"]
    output_size: Size2  # an int or [int] for (batch, channels, length) inputs


# ---- shape --------------------------------------------------------------------------

class Flatten(StrictModel):
    type: Literal["flatten"]
    start_dim: int = Field(default=1, ge=1)
    end_dim: int = -1


class Reshape(StrictModel):
    type: Literal["reshape"]
    shape: list[int] = Field(min_length=1)  # without the batch dim; one -1 is inferred

    @field_validator("shape")
    @classmethod
    def _sizes(cls, shape: list[int]) -> list[int]:
        if shape.count(-1) > 1:
            raise ValueError("only one size can be -1")
        if any(s == 0 or s < -1 for s in shape):
            raise ValueError("sizes must be positive, or -1 for the one inferred")
        return shape


# ---- sequences ------------------------------------------------------------------------

class _Recurrent(StrictModel):
    type: str
    hidden_size: PositiveInt
    num_layers: PositiveInt = 1
    bias: bool = True
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    bidirectional: bool = False
    # "last": (batch, hidden * directions); "sequence": (batch, seq, hidden * directions)
    output: Literal["last", "sequence"] = "last"
    init: Init | None = None

    @field_validator("dropout")
    @classmethod
    def _dropout_needs_stacked_layers(cls, dropout: float, info: ValidationInfo) -> float:
        if dropout > 0 and info.data.get("num_layers") == 1:
            raise ValueError("dropout acts between stacked layers, so it needs num_layers > 1; "
                             "add a dropout layer after this one instead")
        return dropout


class RNN(_Recurrent):
    type: Literal["rnn"]
    nonlinearity: Literal["tanh", "relu"] = "tanh"


class LSTM(_Recurrent):
    type: Literal["lstm"]


class GRU(_Recurrent):
    type: Literal["gru"]


class Embedding(StrictModel):
    type: Literal["embedding"]
    num_embeddings: PositiveInt
    embedding_dim: PositiveInt
    padding_idx: int | None = None
    init: Init | None = None

    @field_validator("padding_idx")
    @classmethod
    def _padding_idx_in_range(cls, idx: int | None, info: ValidationInfo) -> int | None:
        n = info.data.get("num_embeddings")
        if idx is not None and n is not None and not -n <= idx < n:
            raise ValueError(f"must be within num_embeddings ({-n}..{n - 1})")
        return idx


class Attention(StrictModel):
    type: Literal["attention"]
    num_heads: PositiveInt
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    bias: bool = True
    init: Init | None = None


# ---- normalization and regularization ----------------------------------------------------

class BatchNorm1d(StrictModel):
    type: Literal["batchnorm1d"]
    eps: float = Field(default=1e-5, gt=0)
    momentum: float = Field(default=0.1, gt=0, le=1)
    affine: bool = True


class BatchNorm2d(BatchNorm1d):
    type: Literal["batchnorm2d"]


class LayerNorm(StrictModel):
    type: Literal["layernorm"]
    eps: float = Field(default=1e-5, gt=0)
    elementwise_affine: bool = True
    bias: bool = True


class Dropout(StrictModel):
    type: Literal["dropout"]
    p: float = Field(default=0.5, ge=0.0, lt=1.0)


# ---- composition ---------------------------------------------------------------------------

class Residual(StrictModel):
    """output = block(x) + shortcut(x); the shortcut is the identity, or a projection when
    the block changes the shape ("auto")."""

    type: Literal["residual"]
    layers: list["Layer"] = Field(min_length=1)
    projection: Literal["auto", "identity"] = "auto"
    init: Init | None = None  # the projection's, and the default for the layers inside

    @field_validator("layers")
    @classmethod
    def _not_too_deep(cls, layers: list) -> list:
        if nesting(layers) >= MAX_NESTING:
            raise ValueError(f"residual blocks are nested more than {MAX_NESTING} deep")
        return layers


def nesting(layers: list) -> int:
    """How deep residual blocks nest inside ``layers``."""
    return max((1 + nesting(l.layers) for l in layers if isinstance(l, Residual)), default=0)


Layer = Annotated[
    Union[Linear, Conv1d, Conv2d, MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d, AdaptiveAvgPool,
          Flatten, Reshape, RNN, LSTM, GRU, Embedding, Attention, BatchNorm1d, BatchNorm2d,
          LayerNorm, Dropout, Residual, ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Softmax,
          LogSoftmax, Identity],
    Field(discriminator="type"),
]

Residual.model_rebuild()
