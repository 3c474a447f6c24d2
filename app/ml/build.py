"""Spec -> torch objects. The one place a spec becomes a model, loss or optimizer.

Layers are built in spec order into an nn.Sequential, so after
``torch.manual_seed(seed)`` the parameters are initialized exactly as a user's
own ``nn.Sequential(...)`` of the same layers would be.
"""
from collections.abc import Sequence

from torch import nn

from app.ml import spec as S
from app.ml.losses import LOSS_BUILDERS, build_loss  # noqa: F401  (one import point)
from app.ml.optimizers import OPTIMIZER_CLASSES, build_optimizer  # noqa: F401

Shape = tuple[int, ...]  # a sample's shape, without the batch dimension


def build_model(model: S.ModelSpec, input_shape: Sequence[int]) -> nn.Sequential:
    """Builds the network on the current default device, initializing in spec order."""
    from app.ml.layers.registry import build_layer
    from app.ml.shapes import layer_input_shapes

    in_shapes = layer_input_shapes(model, tuple(input_shape))
    return nn.Sequential(*(build_layer(l, s, default_init=model.init)
                           for l, s in zip(model.layers, in_shapes)))
