"""'Did you mean': the allowed name closest to an unknown field or type, for the 422 bodies.

Pydantic's errors do not carry the allowed field names, so the request model's type
annotations are walked along the error's location to the model that refused the field.
"""
import difflib
from types import NoneType, UnionType
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel, Tag

# Names other libraries use (Keras, mostly) for what the spec spells PyTorch's way; closeness of
# spelling cannot find them (learning_rate and lr share two letters). Each is suggested only
# where the name on the right is allowed.
OTHER_NAMES = {
    "learning_rate": ("lr",), "units": ("out_features", "hidden_size"), "filters": ("out_channels",),
    "kernel": ("kernel_size",), "pool_size": ("kernel_size",), "strides": ("stride",),
    "rate": ("p",), "use_bias": ("bias",), "epsilon": ("eps",), "decay": ("weight_decay",),
    "beta_1": ("betas",), "beta_2": ("betas",), "return_sequences": ("output",),
    "dense": ("linear",), "conv2D": ("conv2d",), "batch_normalization": ("batchnorm1d",),
    "categorical_crossentropy": ("cross_entropy",), "sparse_categorical_crossentropy": ("cross_entropy",),
    "binary_crossentropy": ("bce_with_logits",), "mean_squared_error": ("mse",),
    "mean_absolute_error": ("l1",),
}


def closest(word: str, allowed: list[str]) -> str | None:
    """The allowed name the user probably meant, or None when none is close."""
    for other in OTHER_NAMES.get(word, OTHER_NAMES.get(word.lower(), ())):
        if other in allowed:
            return other
    lowered = {name.lower(): name for name in allowed}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def _members(annotation) -> list:
    """A union's members (Annotated kept: it carries a Tag); anything else alone. None dropped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner = get_args(annotation)[0]
        return _members(inner) if get_origin(inner) in (Union, UnionType) else [annotation]
    if origin in (Union, UnionType):
        return [m for arg in get_args(annotation) if arg is not NoneType for m in _members(arg)]
    return [annotation]


def _bare(annotation):
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _labels(annotation) -> set[str]:
    """What pydantic writes in a location for this union member: its tag, or its class's name."""
    labels = {m.tag for m in getattr(annotation, "__metadata__", ()) if isinstance(m, Tag)}
    bare = _bare(annotation)
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        labels.add(bare.__name__)
        for key in ("type", "name"):  # the discriminators the specs use
            field = bare.model_fields.get(key)
            if field is not None:
                labels.update(a for a in get_args(field.annotation) if isinstance(a, str))
    return labels


def _step(candidates: list, part) -> list:
    """The annotations one location segment further in."""
    if isinstance(part, int):
        return [m for c in candidates if get_origin(_bare(c)) in (list, tuple, set)
                for m in _members(get_args(_bare(c))[0])]
    tagged = [c for c in candidates if part in _labels(c)]
    if tagged:  # a discriminated union's tag: the member it chose
        return [m for c in tagged for m in _members(_bare(c))]
    inner = []
    for c in map(_bare, candidates):
        if isinstance(c, type) and issubclass(c, BaseModel) and part in c.model_fields:
            inner += _members(c.model_fields[part].annotation)
        elif get_origin(c) is dict:
            inner += _members(get_args(c)[1])
    return inner or candidates  # a branch label ("function-after[...]"): stay


def allowed_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names allowed in the object that holds loc's last segment."""
    candidates = [model]
    for part in loc[:-1]:
        candidates = _step(candidates, part)
    names: list[str] = []
    for c in map(_bare, candidates):
        if isinstance(c, type) and issubclass(c, BaseModel):
            names += [n for n in c.model_fields if n not in names]
    return names


def suggestion(error: dict, model: type[BaseModel] | None) -> str | None:
    """'did you mean ...?' for an unknown field (given the request model) or an unknown union tag."""
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "extra_forbidden" and model is not None and loc and isinstance(loc[-1], str):
        if loc[0] in ("query", "path", "header", "cookie"):  # not in the body model
            return None
        match = closest(loc[-1], allowed_fields(model, loc[1:] if loc[0] == "body" else loc))
    elif error.get("type") == "union_tag_invalid":
        ctx = error.get("ctx") or {}
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        match = closest(str(ctx.get("tag", "")), [t for t in tags if t])
    else:
        return None
    return f"did you mean '{match}'?" if match else None
