"""Residual blocks: output = block(x) + shortcut(x), with the shortcut chosen from the shapes.

The shortcut is the identity when the block keeps the shape. Otherwise ("auto") it is
the projection of He et al. 2016 (eq. 2, no bias: the block's own layers carry one):
- a 1x1 conv1d/conv2d with the stride that maps the spatial size, when the block works
  channels-first (it contains a convolution or pooling layer);
- else a linear layer on the last dim, when only the last dim changes: (batch, features)
  or (batch, seq, features).

A block is wrapped around layers already built, at shapes already known: the dry run
(app/ml/shapes.py) wraps the meta layers it traced, app/ml/build.py the real ones it built
from the dry run's reports. So this module needs neither the registry nor the dry run.
"""
from dataclasses import dataclass

from torch import nn

from app.ml.layers.init import apply_init
from app.ml.layers.rules import ShapeMismatch, fmt
from app.ml.layers.sizes import Shape, shortcut_stride
CHANNELS_FIRST = ("conv1d", "conv2d", "maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d",
                  "adaptive_avgpool", "batchnorm2d")


class Residual(nn.Module):
    def __init__(self, block: nn.Sequential, shortcut: nn.Module):
        super().__init__()
        self.block = block
        self.shortcut = shortcut

    def forward(self, x):
        return self.block(x) + self.shortcut(x)  # same shape, checked when the spec was planned


@dataclass(frozen=True)
class Shortcut:
    kind: str  # identity | linear | conv1d | conv2d
    in_size: int = 0
    out_size: int = 0
    stride: tuple[int, ...] = ()

    def build(self) -> nn.Module:
        if self.kind == "identity":
            return nn.Identity()
        if self.kind == "linear":
            return nn.Linear(self.in_size, self.out_size, bias=False)
        conv = nn.Conv1d if self.kind == "conv1d" else nn.Conv2d
        return conv(self.in_size, self.out_size, kernel_size=1, stride=self.stride, bias=False)


def _channels_first(layers) -> bool:
    return any(l.type in CHANNELS_FIRST or (l.type == "residual" and _channels_first(l.layers))
               for l in layers)


def plan_shortcut(spec, shape_in: Shape, shape_out: Shape) -> Shortcut:
    """Chooses the shortcut for a block mapping ``shape_in`` to ``shape_out``, or raises ShapeMismatch."""
    if shape_in == shape_out:
        return Shortcut("identity")
    change = f"the residual block maps {fmt(shape_in)} to {fmt(shape_out)}"
    if spec.projection == "identity":
        raise ShapeMismatch(f"{change}, but projection 'identity' needs the block to keep the shape; "
                            "use projection 'auto' to add a projection shortcut")
    if len(shape_in) != len(shape_out):
        raise ShapeMismatch(f"{change}: a shortcut cannot change the number of dims; "
                            "move the flatten or reshape out of the block")
    if len(shape_in) in (2, 3) and _channels_first(spec.layers):
        strides = tuple(shortcut_stride(a, b) for a, b in zip(shape_in[1:], shape_out[1:]))
        if None in strides:
            raise ShapeMismatch(f"{change}: no 1x1 convolution shortcut with a stride turns the spatial "
                                f"size {shape_in[1:]} into {shape_out[1:]}; change the block's "
                                "padding or stride")
        kind = "conv1d" if len(shape_in) == 2 else "conv2d"
        return Shortcut(kind, shape_in[0], shape_out[0], strides)
    if shape_in[:-1] != shape_out[:-1]:
        raise ShapeMismatch(f"{change}: a linear shortcut can change only the last dim")
    return Shortcut("linear", shape_in[-1], shape_out[-1])


def build_residual(spec, block: nn.Sequential, shape_in: Shape, shape_out: Shape,
                   scheme=None) -> Residual:
    """Wraps the block's built layers, mapping ``shape_in`` to ``shape_out``, with its shortcut.

    The shortcut is built (and initialized with ``scheme``) after the block's layers, so the
    global generator's draws stay in spec order. Raises ShapeMismatch when no shortcut fits.
    """
    shortcut = plan_shortcut(spec, shape_in, shape_out).build()
    if scheme is not None:
        apply_init(shortcut, scheme)
    return Residual(block, shortcut)
