"""What /v1/studies takes and answers. The leaderboard and curves models live with their computation."""
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from app.labels import Labels
from app.ml.strict import StrictModel
from app.studies.curves import Curves  # noqa: F401  (re-exported for the routes)
from app.studies.leaderboard import Leaderboard
from app.studies.search import SearchSpec

# A dotted path into a job spec: names, and list indices as numbers (model.layers.0.out_features).
PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|\d+))*$")


def check_paths(where: str, paths) -> None:
    for path in paths:
        if not isinstance(path, str) or len(path) > 200 or not PATH.match(path):
            raise ValueError(f"{where}: {str(path)[:60]!r} is not a dotted path into the job spec "
                             "(e.g. optimizer.lr, model.layers.0.out_features)")


Label = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")
# The metrics an epoch point reports that a study can rank on (docs/studies.md).
OBJECTIVE_METRICS = ("val_loss", "train_loss", "val_accuracy")


class Variant(StrictModel):
    label: str = Label
    # Overrides of the base spec: nested objects, or dotted paths ("optimizer.lr": 0.1).
    set: dict[str, Any] = {}

    @field_validator("set")
    @classmethod
    def _paths(cls, changes: dict) -> dict:
        check_paths("set", changes)
        return changes


class Objective(StrictModel):
    metric: Literal["val_loss", "train_loss", "val_accuracy"] = "val_loss"
    # Default: min for a loss, max for an accuracy.
    mode: Literal["min", "max"] | None = None
    # What "converged" means for the time-to-target figures (val_loss <= target in min mode).
    target: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _default_mode(self):
        if self.mode is None:
            self.mode = "max" if self.metric.endswith("accuracy") else "min"
        return self


class StudyCreate(StrictModel):
    """A base job spec and what varies: labelled variants and/or a grid (crossed), once per seed;
    or a search (Optuna) instead."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    # The study's labels, which its member jobs carry too (GET /v1/jobs?label= finds them).
    labels: Labels = {}
    base: dict[str, Any] = Field(description="a job spec, as POST /v1/jobs takes; members override parts of it")
    variants: list[Variant] = []
    # Dotted paths into the spec and the values each takes; crossed with each other and the variants.
    grid: dict[str, list[Any]] = {}
    # Every variant runs once per seed (training.seed); default: the base's seed.
    seeds: list[int] = Field(default=[], max_length=1000)
    objective: Objective = Objective()
    search: SearchSpec | None = None
    # The most members running at once (default: as many as there are workers online).
    parallel: int | None = Field(default=None, ge=1, le=1000)

    @model_validator(mode="after")
    def _consistent(self):
        labels = [v.label for v in self.variants]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"variants: each label must be unique; repeated: {', '.join(dupes)}")
        check_paths("grid", self.grid)
        if self.search is not None:
            check_paths("search.space", self.search.space)
        for path, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{path}: give at least one value")
        if len(set(self.seeds)) < len(self.seeds):
            raise ValueError("seeds: each seed must be unique")
        if any(not 0 <= s <= 2**63 - 1 for s in self.seeds):
            raise ValueError("seeds: a seed is an integer from 0 to 2^63 - 1")
        if self.search is not None and (self.variants or self.grid):
            raise ValueError("search: a study has either a search or variants/grid, not both")
        if self.search is not None and len(self.seeds) > 1:
            raise ValueError("seeds: a search runs each trial once (give at most one seed); "
                             "to compare seeds, run the winning params as a variants study")
        return self


class MemberRead(BaseModel):
    job_id: str
    member: int
    variant: str
    seed: int
    status: str
    params: dict[str, Any]
    error: str | None  # why it failed, or was pruned
    # Trained in a pack (app/studies/packing.py): the pack's id and its size; None: alone.
    pack_id: str | None = None
    packed_with: int | None = None
    unpackable: str | None = None  # why its spec trains alone, when it cannot be packed


class StudyRead(BaseModel):
    id: str
    name: str | None
    labels: dict[str, str] = {}
    status: Literal["running", "completed", "cancelled"]
    kind: Literal["variants", "search"]
    objective: Objective
    planned: int  # members in all (a search: its trials)
    parallel: int | None
    counts: dict[str, int]  # members per job status
    members: list[MemberRead]
    leaderboard: Leaderboard
    created_at: datetime
    finished_at: datetime | None


class StudySummary(BaseModel):
    """A study in GET /v1/studies: without members and leaderboard."""

    id: str
    name: str | None
    labels: dict[str, str] = {}
    status: str
    kind: str
    planned: int
    counts: dict[str, int]
    created_at: datetime
    finished_at: datetime | None


class StudyPage(BaseModel):
    items: list[StudySummary]
    total: int
    limit: int
    offset: int
