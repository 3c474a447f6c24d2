"""Warm start and fine-tuning (the spec's ``init``): which layers come from the source job, the
pre-flight's layer-by-layer shape check, and the copy and freeze the worker makes after the build.

The copy happens after ``torch.manual_seed(seed)`` and the build, so every layer not copied is
initialized exactly as a cold start's; a resumed attempt then restores its own checkpoint over it.
"""
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from app.ml.build import build_model
from app.ml.errors import SpecError
from app.ml.source_spec import InitFrom, layer_index
from app.ml.spec import ModelSpec

Shapes = dict[str, tuple[int, ...]]  # state_dict key (without the layer's index) -> shape


@dataclass(frozen=True)
class SourceJob:
    """A succeeded job another job starts from (init.from_job) or learns from (distill.teacher)."""

    job_id: str
    model: ModelSpec
    input_shape: tuple[int, ...]
    loss_type: str


@dataclass(frozen=True)
class LayerStates:
    """Per top-level layer index: its state's shapes; and which layers hold parameters."""

    state: dict[int, Shapes]
    with_parameters: set[int]


def layer_states(model: ModelSpec, input_shape: Sequence[int]) -> LayerStates:
    """Built on the meta device: shapes only, no memory, no random draws."""
    with torch.device("meta"):
        net = build_model(model, input_shape)
    state: dict[int, Shapes] = {}
    for key, value in net.state_dict().items():
        index, rest = key.split(".", 1)
        state.setdefault(int(index), {})[rest] = tuple(value.shape)
    return LayerStates(state, {int(name.split(".", 1)[0]) for name, _ in net.named_parameters()})


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def copied(init: InitFrom, states: LayerStates) -> list[tuple[str, int]]:
    """(the field that names it, layer index) of every layer the source's weights go into."""
    if init.layers == "all":
        return [("init.layers", i) for i in sorted(states.state)]
    return [(f"init.layers[{k}]", layer_index(path)) for k, path in enumerate(init.layers)]


def check_init(init: InitFrom, model: ModelSpec, input_shape: Sequence[int], source: SourceJob) -> None:
    """Raises SpecError naming the init field whose layer the source's weights do not fit."""
    ours, theirs = layer_states(model, input_shape), layer_states(source.model, source.input_shape)
    n, src = len(model.layers), source.job_id
    targets = copied(init, ours)
    if not targets:
        raise SpecError("init.layers", "the model has no layer with weights to copy")
    for field, i in targets:
        if i >= n:
            raise SpecError(field, f"layers[{i}] is past the model's last layer, layers[{n - 1}]")
        if i not in ours.state:
            raise SpecError(field, f"model.layers[{i}] is a {model.layers[i].type}: it has no weights to copy")
        if i not in theirs.state:
            what = source.model.layers[i].type if i < len(source.model.layers) else "missing"
            raise SpecError(field, f"model.layers[{i}] has weights here but not in {src} (its layers[{i}]: {what})")
        mine, other = ours.state[i], theirs.state[i]
        if set(mine) != set(other):
            raise SpecError(field, f"model.layers[{i}] holds {', '.join(mine)} here but {', '.join(other)} in {src} "
                                   f"(a {model.layers[i].type} here, a {source.model.layers[i].type} there)")
        for key, shape in mine.items():
            if other[key] != shape:
                raise SpecError(field, f"model.layers[{i}] {key} is {_shape(shape)} here but "
                                       f"{_shape(other[key])} in {src}")
    copies = {i for _, i in targets}
    for k, path in enumerate(init.freeze):
        i = layer_index(path)
        if i >= n or i not in ours.with_parameters:
            what = f"a {model.layers[i].type}" if i < n else "past the model's last layer"
            raise SpecError(f"init.freeze[{k}]", f"{path} is {what}: it has no parameters to freeze")
        if i not in copies:
            raise SpecError(f"init.freeze[{k}]", f"{path} is not copied from {src}, so freezing it would keep "
                                                 "its random initial weights; add it to init.layers")
    if ours.with_parameters and ours.with_parameters <= {layer_index(p) for p in init.freeze}:
        raise SpecError("init.freeze", "freezes every layer with parameters: nothing would train")


def apply_init(model: nn.Sequential, init: InitFrom, state: dict[str, torch.Tensor]) -> None:
    """Copies the source's state into the chosen layers (in place), then freezes init.freeze."""
    own = model.state_dict()
    with_state = {int(k.split(".", 1)[0]) for k in own}
    layers = with_state if init.layers == "all" else {layer_index(p) for p in init.layers}
    picked = {k: v for k, v in state.items() if int(k.split(".", 1)[0]) in layers}
    missing = {k for k in own if int(k.split(".", 1)[0]) in layers} - set(picked)
    if missing:  # the pre-flight checked the source's spec; its weights file says otherwise
        raise SpecError("init.from_job", f"{init.from_job}'s weights lack {', '.join(sorted(missing))}")
    model.load_state_dict(picked, strict=False)  # shapes were checked; a mismatch raises here
    for path in init.freeze:
        for p in model[layer_index(path)].parameters():
            p.requires_grad_(False)


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the optimizer updates: every one but the frozen."""
    return [p for p in model.parameters() if p.requires_grad]
