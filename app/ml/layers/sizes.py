"""A sample's Shape, and the sizes PyTorch takes as an int or a tuple (kernel_size, stride,
padding), with their arithmetic.

The sizes are validated by hand rather than as ``int | tuple[int, int]`` so that a bad
value gives one message ("a positive integer or a list of 2 ...") instead of one per
union branch, under the field's own path.
"""
import math
from collections.abc import Sequence
from typing import Annotated, Literal, Union

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

# A sample's shape, without the batch dimension: (features,), (channels, h, w), (seq, features).
Shape = tuple[int, ...]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _size(dims: int, minimum: int, words: tuple[str, ...] = ()):
    kind = "positive integer" if minimum > 0 else "non-negative integer"
    allowed = f"a {kind} or a list of {dims} of them" if dims > 1 else f"a {kind}"
    if words:
        allowed += ", or " + " or ".join(repr(w) for w in words)

    def validate(value):
        if isinstance(value, str) and value in words:
            return value
        if _is_int(value) and value >= minimum:
            return value
        if isinstance(value, (list, tuple)) and len(value) == dims \
                and all(_is_int(v) and v >= minimum for v in value):
            return tuple(value) if dims > 1 else value[0]
        raise ValueError(f"must be {allowed}")

    number = {"type": "integer", "minimum": minimum}
    schema = {"anyOf": [number, {"type": "array", "items": number, "minItems": dims, "maxItems": dims},
                        *({"const": w} for w in words)]}
    # Tuples are written back as lists, the JSON the user sent.
    serialize = PlainSerializer(lambda v: list(v) if isinstance(v, tuple) else v)
    return PlainValidator(validate), serialize, WithJsonSchema(schema)


Pair = Union[int, tuple[int, int]]
Padding = Union[int, tuple[int, int], Literal["same", "valid"]]

Size1 = Annotated[int, *_size(1, 1)]
Size2 = Annotated[Pair, *_size(2, 1)]
Pad1 = Annotated[Union[int, Literal["same", "valid"]], *_size(1, 0, ("same", "valid"))]
Pad2 = Annotated[Padding, *_size(2, 0, ("same", "valid"))]
PoolPad1 = Annotated[int, *_size(1, 0)]
PoolPad2 = Annotated[Pair, *_size(2, 0)]


def as_tuple(value, dims: int) -> tuple[int, ...]:
    """3 -> (3, 3); (3, 1) stays; the form PyTorch normalizes every size to."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


def conv_output(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a convolution or pooling window, PyTorch's formula (floor mode)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def window_output(spatial: Sequence[int], kernel, stride, padding, dilation=1) -> tuple[int, ...]:
    """Output spatial shape of a conv/pool layer; ``padding`` may be "same" or "valid"."""
    dims = len(spatial)
    if padding == "same":
        return tuple(spatial)
    pad = (0,) * dims if padding == "valid" else as_tuple(padding, dims)
    return tuple(conv_output(s, k, st, p, d) for s, k, st, p, d in zip(
        spatial, as_tuple(kernel, dims), as_tuple(stride, dims), pad, as_tuple(dilation, dims)))


def shortcut_stride(size_in: int, size_out: int) -> int | None:
    """The stride of a 1x1 convolution that maps length ``size_in`` to ``size_out``, if any."""
    stride = max(1, math.ceil(size_in / size_out)) if size_out > 0 else 0
    if stride and conv_output(size_in, 1, stride, 0) == size_out:
        return stride
    return None
