"""Input-shape rules: what each layer accepts, checked before torch sees a tensor.

Torch is lenient in a way that hides mistakes: a conv2d given (batch, h, w) reads it
as one unbatched image with ``batch`` channels, an LSTM given (batch, features) as one
unbatched sequence. So every layer's expected rank is checked here and explained in
the user's terms. Shapes exclude the batch dim; messages show it as "(batch, ...)".
"""
import math
from collections.abc import Callable

from app.ml.layers.sizes import Shape, as_tuple, window_output


class ShapeMismatch(ValueError):
    """A layer cannot take its input shape; the caller adds the layer's path."""


def fmt(shape: Shape) -> str:
    return "(" + ", ".join(["batch", *map(str, shape)]) + ")"


LAYOUTS = {1: "(batch, features)", 2: "(batch, channels, length)", 3: "(batch, channels, h, w)"}
SEQUENCE = "(batch, seq, features)"


def _need_rank(name: str, shape: Shape, rank: int, layout: str, hint: str = "") -> None:
    if len(shape) != rank:
        raise ShapeMismatch(f"{name} expects {rank + 1}-D input {layout}, got {fmt(shape)}{hint}")


def _image_hint(shape: Shape, dims: int) -> str:
    """Suggests the reshape that reads flat features as one channel, when there is an obvious one."""
    if len(shape) != 1:
        return ""
    n = shape[0]
    side = math.isqrt(n)
    if dims == 1:
        target = [1, n]
    elif side * side == n:
        target = [1, side, side]
    else:
        return "; add a reshape layer before it to give the features channels and a spatial shape"
    return f'; add {{"type": "reshape", "shape": {target}}} before it to read the features as one channel'


def _window(layer, shape: Shape, kernel, stride, padding, dilation) -> None:
    out = window_output(shape[1:], kernel, stride, padding, dilation)
    if min(out) < 1:
        window = f"kernel_size {kernel}" + (f" with dilation {dilation}" if dilation != 1 else "") \
            + (f" and padding {padding}" if padding not in (0, "valid") else "")
        raise ShapeMismatch(f"{layer.type} {window} does not fit the input's spatial size "
                            f"{tuple(shape[1:])}: the output would be {out}; input {fmt(shape)}")


def conv(layer, shape: Shape) -> None:
    dims = 1 if layer.type == "conv1d" else 2
    _need_rank(layer.type, shape, dims + 1, LAYOUTS[dims + 1], _image_hint(shape, dims))
    if shape[0] % layer.groups:
        raise ShapeMismatch(f"{layer.type} groups={layer.groups} must divide the input's {shape[0]} "
                            f"channels; input {fmt(shape)}")
    _window(layer, shape, layer.kernel_size, layer.stride, layer.padding, layer.dilation)


def pool(layer, shape: Shape) -> None:
    dims = 1 if layer.type.endswith("1d") else 2
    _need_rank(layer.type, shape, dims + 1, LAYOUTS[dims + 1], _image_hint(shape, dims))
    stride = layer.kernel_size if layer.stride is None else layer.stride
    _window(layer, shape, layer.kernel_size, stride, layer.padding, 1)


def adaptive_pool(layer, shape: Shape) -> None:
    if len(shape) not in (2, 3):
        raise ShapeMismatch(f"adaptive_avgpool expects 3-D {LAYOUTS[2]} or 4-D {LAYOUTS[3]} input, "
                            f"got {fmt(shape)}")
    if len(shape) == 2 and len(as_tuple(layer.output_size, 1)) != 1:
        raise ShapeMismatch(f"adaptive_avgpool over {LAYOUTS[2]} takes one output_size, "
                            f"got {layer.output_size}; input {fmt(shape)}")


def reshape(layer, shape: Shape) -> None:
    have = math.prod(shape)
    known = math.prod(s for s in layer.shape if s != -1)
    fits = have % known == 0 if -1 in layer.shape else have == known
    if not fits:
        target = "(batch, " + ", ".join(map(str, layer.shape)) + ")"
        need = f"a multiple of {known}" if -1 in layer.shape else str(known)
        raise ShapeMismatch(f"reshape to {target} needs {need} elements per sample, "
                            f"but the input {fmt(shape)} has {have}")


def recurrent(layer, shape: Shape) -> None:
    hint = ""
    if len(shape) == 1:
        hint = (f'; add {{"type": "reshape", "shape": [{shape[0]}, 1]}} before it to read the '
                f"{shape[0]} features as a sequence of {shape[0]} steps of 1 feature")
    elif len(shape) > 2:
        hint = "; add a reshape before it to give the input a (seq, features) shape"
    _need_rank(layer.type, shape, 2, SEQUENCE, hint)


def attention(layer, shape: Shape) -> None:
    hint = (f'; add {{"type": "reshape", "shape": [{shape[0]}, 1]}} and a linear layer before it to '
            "read the features as a sequence of embedded steps (or an embedding, for token ids)"
            if len(shape) == 1 else "")
    _need_rank("attention", shape, 2, "(batch, seq, embed)", hint)
    if shape[-1] % layer.num_heads:
        raise ShapeMismatch(f"attention num_heads={layer.num_heads} must divide embed_dim={shape[-1]} "
                            f"(the input's last dim); input {fmt(shape)}")


def batchnorm1d(layer, shape: Shape) -> None:
    if len(shape) not in (1, 2):
        raise ShapeMismatch(f"batchnorm1d expects 2-D (batch, features) or 3-D "
                            f"(batch, channels, length) input, got {fmt(shape)}")


def batchnorm2d(layer, shape: Shape) -> None:
    _need_rank("batchnorm2d", shape, 3, LAYOUTS[3])


def flatten(layer, shape: Shape) -> None:
    ndim = len(shape) + 1
    end = layer.end_dim if layer.end_dim >= 0 else ndim + layer.end_dim
    if layer.start_dim >= ndim or end >= ndim or end < 0:
        raise ShapeMismatch(f"flatten dims {layer.start_dim}..{layer.end_dim} "
                            f"are out of range for input {fmt(shape)}")


def softmax(layer, shape: Shape) -> None:
    if not -(len(shape) + 1) <= layer.dim <= len(shape):
        raise ShapeMismatch(f"{layer.type} dim {layer.dim} is out of range for input {fmt(shape)}")
    if layer.dim in (0, -(len(shape) + 1)):
        raise ShapeMismatch(f"{layer.type} over dim 0 mixes the samples of a batch; use a feature dim")


RULES: dict[str, Callable[[object, Shape], None]] = {
    "conv1d": conv, "conv2d": conv,
    "maxpool1d": pool, "maxpool2d": pool, "avgpool1d": pool, "avgpool2d": pool,
    "adaptive_avgpool": adaptive_pool, "reshape": reshape, "flatten": flatten,
    "rnn": recurrent, "lstm": recurrent, "gru": recurrent, "attention": attention,
    "batchnorm1d": batchnorm1d, "batchnorm2d": batchnorm2d,
    "softmax": softmax, "log_softmax": softmax,
}


def check_input(layer, shape: Shape) -> None:
    """Raises ShapeMismatch when ``layer`` cannot take samples of ``shape``."""
    rule = RULES.get(layer.type)
    if rule is not None:
        rule(layer, shape)
