"""Layer builders keyed by the spec's ``type``: a new layer is one entry here and one spec class.

A builder gets the layer's spec and the shape of one input sample (batch dim excluded)
and returns the module PyTorch would build, on the current default device. Input sizes
come from that shape: the last dim for features, the first for channels.

The residual block is the one layer that holds layers, so it has no entry: whoever knows
its layers' shapes builds them and wraps them (app/ml/layers/residual.py build_residual).
"""
from collections.abc import Callable

from torch import nn

from app.ml.layers.init import apply_init
from app.ml.layers.modules import Recurrent, Reshape, SelfAttention, TokenEmbedding
from app.ml.layers.sizes import Shape
from app.ml.layers.specs import Layer

RECURRENT = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
POOLS = {"maxpool1d": nn.MaxPool1d, "maxpool2d": nn.MaxPool2d,
         "avgpool1d": nn.AvgPool1d, "avgpool2d": nn.AvgPool2d}


def _conv(l, shape: Shape) -> nn.Module:
    cls = nn.Conv1d if l.type == "conv1d" else nn.Conv2d
    return cls(shape[0], l.out_channels, l.kernel_size, stride=l.stride, padding=l.padding,
               dilation=l.dilation, groups=l.groups, bias=l.bias)


def _pool(l, shape: Shape) -> nn.Module:
    return POOLS[l.type](l.kernel_size, stride=l.stride, padding=l.padding)


def _adaptive_pool(l, shape: Shape) -> nn.Module:
    # the input's rank picks the pool: (channels, length) or (channels, h, w)
    return nn.AdaptiveAvgPool1d(l.output_size) if len(shape) == 2 else nn.AdaptiveAvgPool2d(l.output_size)


def _recurrent(l, shape: Shape) -> nn.Module:
    extra = {"nonlinearity": l.nonlinearity} if l.type == "rnn" else {}
    rnn = RECURRENT[l.type](shape[-1], l.hidden_size, num_layers=l.num_layers, bias=l.bias,
                            batch_first=True, dropout=l.dropout, bidirectional=l.bidirectional, **extra)
    return Recurrent(rnn, l.output)


LAYER_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "linear": lambda l, shape: nn.Linear(shape[-1], l.out_features, bias=l.bias),
    "conv1d": _conv,
    "conv2d": _conv,
    "maxpool1d": _pool,
    "maxpool2d": _pool,
    "avgpool1d": _pool,
    "avgpool2d": _pool,
    "adaptive_avgpool": _adaptive_pool,
    "flatten": lambda l, shape: nn.Flatten(l.start_dim, l.end_dim),
    "reshape": lambda l, shape: Reshape(tuple(l.shape)),
    "rnn": _recurrent,
    "lstm": _recurrent,
    "gru": _recurrent,
    "embedding": lambda l, shape: TokenEmbedding(l.num_embeddings, l.embedding_dim,
                                                 padding_idx=l.padding_idx),
    "attention": lambda l, shape: SelfAttention(shape[-1], l.num_heads, l.dropout, l.bias),
    "batchnorm1d": lambda l, shape: nn.BatchNorm1d(
        shape[0], eps=l.eps, momentum=l.momentum, affine=l.affine
    ),
    "batchnorm2d": lambda l, shape: nn.BatchNorm2d(
        shape[0], eps=l.eps, momentum=l.momentum, affine=l.affine
    ),
    "layernorm": lambda l, shape: nn.LayerNorm(shape[-1], eps=l.eps,
                                               elementwise_affine=l.elementwise_affine, bias=l.bias),
    "dropout": lambda l, shape: nn.Dropout(l.p),
    "relu": lambda l, shape: nn.ReLU(),
    "leaky_relu": lambda l, shape: nn.LeakyReLU(l.negative_slope),
    "elu": lambda l, shape: nn.ELU(l.alpha),
    "gelu": lambda l, shape: nn.GELU(approximate=l.approximate),
    "sigmoid": lambda l, shape: nn.Sigmoid(),
    "tanh": lambda l, shape: nn.Tanh(),
    "softmax": lambda l, shape: nn.Softmax(dim=l.dim),
    "log_softmax": lambda l, shape: nn.LogSoftmax(dim=l.dim),
    "identity": lambda l, shape: nn.Identity(),
}


def has_init(layer: Layer) -> bool:
    """Whether the layer has weights an ``init`` scheme applies to (its spec has an init field)."""
    return "init" in type(layer).model_fields


def build_layer(layer: Layer, in_shape: Shape, default_init=None) -> nn.Module:
    """Builds one layer (not a residual block) for inputs of ``in_shape`` and initializes it.

    ``default_init`` (the model's ``init``) applies to weight layers without their own.
    Initializing here, before the next layer is built, keeps the global generator's
    draws in spec order, as in a hand-written script.
    """
    module = LAYER_BUILDERS[layer.type](layer, in_shape)
    scheme = getattr(layer, "init", None) or default_init
    if scheme is not None and has_init(layer):
        apply_init(module, scheme)
    return module
