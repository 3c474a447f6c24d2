"""Spec -> torch objects. The one place a spec becomes a model, loss or optimizer.

Layers are built in spec order into an nn.Sequential, so after
``torch.manual_seed(seed)`` the parameters are initialized exactly as a user's
own ``nn.Sequential(...)`` of the same layers would be. Each layer is built at the
input shape the dry run found for it (app/ml/shapes.py), a residual block's layers too.
"""
from collections.abc import Sequence

from torch import nn

from app.ml import spec as S
from app.ml.layers.registry import build_layer
from app.ml.layers.residual import build_residual
from app.ml.losses import LOSS_BUILDERS, build_loss  # noqa: F401  (one import point)
from app.ml.optimizers import OPTIMIZER_CLASSES, build_optimizer  # noqa: F401
from app.ml.shapes import LayerReport, dry_run


def build_model(model: S.ModelSpec, input_shape: Sequence[int]) -> nn.Sequential:
    """Builds the network on the current default device, initializing in spec order."""
    reports = dry_run(model, tuple(input_shape))
    return nn.Sequential(*_build_layers(model.layers, reports, model.init))


def _build_layers(layers, reports: list[LayerReport], default_init) -> list[nn.Module]:
    return [_build(layer, report, default_init) for layer, report in zip(layers, reports)]


def _build(layer, report: LayerReport, default_init) -> nn.Module:
    """One layer at its traced input shape; a residual block's layers first, then its shortcut."""
    if layer.type != "residual":
        return build_layer(layer, report.input_shape, default_init)
    scheme = layer.init or default_init  # the block's own default reaches its layers and shortcut
    block = nn.Sequential(*_build_layers(layer.layers, report.layers, scheme))
    return build_residual(layer, block, report.input_shape, report.output_shape, scheme)
