"""A study's members: the variants x grid points x seeds it runs, and each member's job spec.

A member's spec is the study's base spec with the member's overrides applied. Each
override remembers where the request set it (``variants[3].set.optimizer``,
``grid.optimizer.lr[1]``, ``seeds[0]``, ``search.space.optimizer.lr``), so an error in a
member's spec names the place the user has to change, not the merged spec nobody wrote.

How an override applies (docs/studies.md): a value at a dotted path replaces what is there;
an object merges into the base's object key by key, except that an object whose ``type``
differs from the base's, or a path ending in ``.type`` that changes it, starts that object
afresh: the base's options for the old type (Adam's betas) are not options of the new one
(SGD), and the member's own overrides under it still apply.
"""
import copy
import itertools
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.errors import FieldErrors, validation_errors
from app.ml.spec import JobSpec


class MemberError(FieldErrors):
    """A member's spec is wrong: ``errors`` are {"field", "message"} naming the request's fields."""


@dataclass(frozen=True)
class Override:
    path: str  # into the job spec, as errors write it: model.layers[0].units
    value: Any
    source: str  # where the request set it: variants[2].set.model.layers[0].units


@dataclass(frozen=True)
class Member:
    index: int  # the member's place in the study: creation and release order
    variant: str
    seed: int
    overrides: tuple[Override, ...]

    @property
    def params(self) -> dict[str, Any]:
        """What the member sets over the base spec, by path (the seed included)."""
        return {o.path: o.value for o in self.overrides}


_INDEX = re.compile(r"\.(\d+)(?=\.|$)")


def normalize(path: str) -> str:
    """A dotted path as error fields write it: model.layers.0.units -> model.layers[0].units."""
    return _INDEX.sub(r"[\1]", path)


def segments(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in re.split(r"\.|\[|\]\.?", path) if p != ""]


def grid_points(grid: dict[str, list]) -> list[tuple[str, tuple[Override, ...]]]:
    """The grid crossed, in order: each point's label and overrides (sources name the value's index)."""
    if not grid:
        return [("", ())]
    paths = list(grid)
    points = []
    for picks in itertools.product(*(range(len(grid[p])) for p in paths)):
        overrides = tuple(Override(normalize(p), grid[p][i], f"grid.{p}[{i}]") for p, i in zip(paths, picks))
        label = ", ".join(f"{p}={_short(grid[p][i])}" for p, i in zip(paths, picks))
        points.append((label, overrides))
    return points


def _short(value: Any) -> str:
    if isinstance(value, dict) and "type" in value:
        return str(value["type"])
    return str(value)


def variant_overrides(index: int, changes: dict[str, Any]) -> tuple[Override, ...]:
    return tuple(Override(normalize(k), v, f"variants[{index}].set.{k}") for k, v in changes.items())


def expand(*, variants: list[tuple[str, dict]], grid: dict[str, list], seeds: list[int],
           base_seed: int) -> list[Member]:
    """Every member: each variant crossed with each grid point, once per seed (no seeds: once,
    with the base's); seed-major, so each seed's round of variants runs before the next seed's."""
    labelled = [(label, variant_overrides(i, changes)) for i, (label, changes) in enumerate(variants)] \
        or [("", ())]
    combos = [(_join(vl, gl), vo + go) for vl, vo in labelled for gl, go in grid_points(grid)]
    rounds = [(seed, (Override("training.seed", seed, f"seeds[{k}]"),)) for k, seed in enumerate(seeds)] \
        or [(base_seed, ())]
    members = []
    for seed, seeded in rounds:
        for label, overrides in combos:
            members.append(Member(len(members), label or "base", seed, overrides + seeded))
    return members


def _join(a: str, b: str) -> str:
    return f"{a} / {b}" if a and b else a or b


def apply(base: dict, overrides: tuple[Override, ...]) -> dict:
    """The base spec with the overrides applied (type changes first); raises MemberError for a path
    that goes nowhere."""
    spec = copy.deepcopy(base)
    for o in sorted(overrides, key=lambda o: not o.path.endswith("type")):
        _set(spec, segments(o.path), copy.deepcopy(o.value), o)
    return spec


def _set(node: Any, path: list[str | int], value: Any, o: Override) -> None:
    *parents, last = path
    for i, key in enumerate(parents):
        node = _child(node, key, parents[i + 1] if i + 1 < len(parents) else last, o)
    _check_step(node, last, o)
    if isinstance(last, int):
        node[last] = value
        return
    if last == "type" and node.get("type") != value:
        node.clear()  # a new type starts afresh: the old type's options are not the new one's
    old = node.get(last)
    if isinstance(value, dict) and isinstance(old, dict) and value.get("type", old.get("type")) == old.get("type"):
        _merge(old, value)
    else:
        node[last] = value


def _check_step(node: Any, key: str | int, o: Override) -> None:
    """A path's next step must exist: an item of a list, or a key into an object."""
    if isinstance(key, int):
        if not isinstance(node, list) or not -len(node) <= key < len(node):
            raise MemberError([{"field": o.source, "message": f"there is no item {key} at {o.path}"}])
    elif not isinstance(node, dict):
        raise MemberError([{"field": o.source, "message": f"{o.path} does not lead into an object"}])


def _child(node: Any, key: str | int, next_key: str | int, o: Override) -> Any:
    _check_step(node, key, o)
    if isinstance(key, str) and node.get(key) is None:
        node[key] = [] if isinstance(next_key, int) else {}
    return node[key]


def _merge(old: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(old.get(k), dict) and v.get("type", old[k].get("type")) == old[k].get("type"):
            _merge(old[k], v)
        else:
            old[k] = v


def attribute(field: str, overrides: tuple[Override, ...]) -> str:
    """The request field an error at ``field`` of a member's spec comes from: the deepest override
    that holds it, else (an error about a whole object) the override nearest under it, else the base."""
    def holds(o: Override) -> bool:
        return field == o.path or field.startswith((o.path + ".", o.path + "["))

    def under(o: Override) -> bool:
        return o.path.startswith((field + ".", field + "["))

    inside = max((o for o in overrides if holds(o)), key=lambda o: len(o.path), default=None)
    if inside is not None:
        return inside.source + field[len(inside.path):]
    nearest = min((o for o in overrides if under(o)), key=lambda o: len(o.path), default=None)
    if nearest is not None:
        return nearest.source
    return f"base.{field}" if field != "body" else "base"


def spec_of(base: dict, member: Member) -> JobSpec:
    """The member's job spec, checked; raises MemberError naming the request's fields."""
    merged = apply(base, member.overrides)
    try:
        return JobSpec.model_validate(merged)
    except ValidationError as exc:
        errors = validation_errors(exc.errors(), merged, JobSpec)
        raise MemberError([{"field": attribute(e["field"], member.overrides), "message": e["message"]}
                           for e in errors]) from None
