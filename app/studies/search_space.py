"""A study's search space and its options, as POST /v1/studies takes them (``search``), and their checks.

The sampling and pruning over it: app/studies/search.py.
"""
import json
import math
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import Field, field_validator, model_validator

from app.ml.strict import StrictModel

KINDS = ("log_uniform", "uniform", "int", "choice")
_FIELD = {"int": "int_range"}  # a field named int would shadow the type in pydantic's namespace
SCALARS = (type(None), bool, int, float, str)


class Dimension(StrictModel):
    """One dimension of the space: exactly one of log_uniform, uniform, int ([low, high]) or choice."""

    log_uniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = Field(default=None, alias="int")
    log: bool = False  # with int: sample on a log scale
    choice: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self):
        given = [k for k in KINDS if self.bounds(k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(KINDS)}")
        kind = given[0]
        if kind != "choice":
            low, high = self.bounds(kind)
            if not (math.isfinite(low) and math.isfinite(high)) or low > high or (kind != "int" and low == high):
                raise ValueError(f"{kind} needs low < high, got [{low}, {high}]")
            if (kind == "log_uniform" or self.log) and low <= 0:
                raise ValueError(f"{kind} on a log scale needs 0 < low, got [{low}, {high}]")
        return self

    def bounds(self, kind: str):
        return getattr(self, _FIELD.get(kind, kind))

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if self.bounds(k) is not None)

    def distribution(self) -> BaseDistribution:
        if self.kind == "choice":
            return CategoricalDistribution(_encoded(self.choice))
        low, high = self.bounds(self.kind)
        if self.kind == "int":
            return IntDistribution(low, high, log=self.log)
        return FloatDistribution(low, high, log=self.kind == "log_uniform")

    def decode(self, value: Any) -> Any:
        """A sampled value as the spec takes it (a choice of objects travels as its JSON text)."""
        if self.kind == "choice" and not _all_scalars(self.choice):
            return json.loads(value)
        return value

    def encode(self, value: Any) -> Any:
        if self.kind == "choice" and not _all_scalars(self.choice):
            return json.dumps(value, sort_keys=True)
        return value


def _all_scalars(values: list) -> bool:
    return all(isinstance(v, SCALARS) for v in values)


def _encoded(values: list) -> tuple:
    # Optuna's CategoricalDistribution takes only None, bool, int, float and str.
    return tuple(values) if _all_scalars(values) else tuple(json.dumps(v, sort_keys=True) for v in values)


class PrunerSpec(StrictModel):
    """Optuna's pruner and the options of it that matter; defaults are Optuna's."""

    type: Literal["median", "hyperband", "successive_halving", "none"] = "none"
    n_startup_trials: int = Field(default=5, ge=0)  # median: completed trials before any pruning
    n_warmup_steps: int = Field(default=0, ge=0)  # median: epochs before a trial may be pruned
    min_resource: int = Field(default=1, ge=1)  # hyperband, successive_halving: epochs of the first rung
    reduction_factor: int | None = Field(default=None, ge=2)  # default 3 (hyperband), 4 (successive_halving)
    min_early_stopping_rate: int = Field(default=0, ge=0)  # successive_halving

    def build(self, max_epochs: int) -> optuna.pruners.BasePruner:
        if self.type == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=self.n_startup_trials,
                                               n_warmup_steps=self.n_warmup_steps)
        if self.type == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=self.min_resource, max_resource=max_epochs,
                                                  reduction_factor=self.reduction_factor or 3)
        if self.type == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=self.min_resource, reduction_factor=self.reduction_factor or 4,
                min_early_stopping_rate=self.min_early_stopping_rate)
        return optuna.pruners.NopPruner()


class SearchSpec(StrictModel):
    """What POST /v1/studies takes as ``search``: the space, the sampler, the pruner, the trials."""

    space: dict[str, Dimension] = Field(min_length=1, max_length=30)
    sampler: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    pruner: PrunerSpec = PrunerSpec()
    parallel: int | None = Field(default=None, ge=1, le=1000)
    trials: int = Field(ge=1)

    @field_validator("pruner", mode="before")
    @classmethod
    def _named(cls, value):
        return {"type": value} if isinstance(value, str) else value

    @field_validator("trials")
    @classmethod
    def _within_the_grid(cls, trials: int, info):
        space, sampler = info.data.get("space"), info.data.get("sampler")
        if sampler == "grid" and space:
            if any(d.kind != "choice" for d in space.values()):
                raise ValueError("the grid sampler needs every dimension of the space to be a choice")
            size = math.prod(len(d.choice) for d in space.values())
            if trials > size:
                raise ValueError(f"the grid has {size} points; give at most {size} trials")
        return trials



def corners(space: dict[str, Dimension]) -> list[dict[str, Any]]:
    """Param sets that between them take every choice and both ends of every range (the other
    dimensions at their first value): checked as full specs when the study is created."""
    def ends(d: Dimension) -> list:
        return list(d.choice) if d.kind == "choice" else list(d.bounds(d.kind))

    first = {k: ends(d)[0] for k, d in space.items()}
    out = [first]
    for k, d in space.items():
        out += [{**first, k: v} for v in ends(d)[1:] if {**first, k: v} not in out]
    return out
