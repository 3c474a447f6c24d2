"""Layer builders keyed by the spec's ``type``: a new layer is one entry here and one spec class."""
from collections.abc import Callable

from torch import nn

from app.ml.layers.specs import Layer

Shape = tuple[int, ...]  # a sample's shape, without the batch dimension

LAYER_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "linear": lambda l, shape: nn.Linear(shape[-1], l.out_features, bias=l.bias),
    "relu": lambda l, shape: nn.ReLU(),
    "sigmoid": lambda l, shape: nn.Sigmoid(),
    "tanh": lambda l, shape: nn.Tanh(),
    "leaky_relu": lambda l, shape: nn.LeakyReLU(l.negative_slope),
    "softmax": lambda l, shape: nn.Softmax(dim=l.dim),
    "identity": lambda l, shape: nn.Identity(),
    "dropout": lambda l, shape: nn.Dropout(l.p),
    "batchnorm1d": lambda l, shape: nn.BatchNorm1d(
        shape[0], eps=l.eps, momentum=l.momentum, affine=l.affine
    ),
    "flatten": lambda l, shape: nn.Flatten(l.start_dim, l.end_dim),
}


def build_layer(layer: Layer, in_shape: Shape) -> nn.Module:
    """Builds one layer for inputs of ``in_shape`` (batch dimension excluded)."""
    return LAYER_BUILDERS[layer.type](layer, in_shape)
