"""Spec -> torch objects. The one place a spec becomes a model, loss or optimizer.

Layers are built in spec order into an nn.Sequential, so after
``torch.manual_seed(seed)`` the parameters are initialized exactly as a user's
own ``nn.Sequential(...)`` of the same layers would be.
"""
from collections.abc import Callable, Sequence

import torch
from torch import nn

from app.ml import spec as S

Shape = tuple[int, ...]  # a sample's shape, without the batch dimension

LOSS_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "mse": nn.MSELoss,
    "l1": nn.L1Loss,
    "cross_entropy": nn.CrossEntropyLoss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
}

OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
}


def build_model(model: S.ModelSpec, input_shape: Sequence[int]) -> nn.Sequential:
    """Builds the network on the current default device, initializing in spec order."""
    from app.ml.layers.registry import build_layer
    from app.ml.shapes import layer_input_shapes

    in_shapes = layer_input_shapes(model, tuple(input_shape))
    return nn.Sequential(*(build_layer(l, s) for l, s in zip(model.layers, in_shapes)))


def build_loss(loss: S.LossSpec) -> nn.Module:
    return LOSS_BUILDERS[loss.type]()


def build_optimizer(opt: S.Optimizer, params) -> torch.optim.Optimizer:
    """Builds the PyTorch optimizer with every option the spec gives."""
    options = opt.model_dump(exclude={"type"})
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    cls = OPTIMIZER_CLASSES[opt.type]
    # foreach is left to PyTorch's default (multi-tensor kernels on CUDA, the
    # per-tensor path on CPU) so results equal a user's own optimizer bit for bit.
    return cls(params, **options)
