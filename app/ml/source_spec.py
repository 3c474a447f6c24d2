"""The spec fields that start from another job: ``init`` (warm start, fine-tuning) and ``distill``
(a teacher's softened outputs). Here only their shape; app/ml/warm_start.py and app/ml/distill.py
check them against the source job and apply them."""
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from app.ml.strict import StrictModel

LAYER_PATH = re.compile(r"^layers\[(\d+)\]$")
JobId = Annotated[str, Field(min_length=1, max_length=64)]


def _paths(paths: list[str]) -> list[str]:
    for path in paths:
        if not LAYER_PATH.match(path):
            raise ValueError(f"{path!r} is not a layer path; write layers[i] for model.layers[i]")
    if len(set(paths)) != len(paths):
        raise ValueError("names a layer twice")
    return paths


class InitFrom(StrictModel):
    """Start from a succeeded job's weights: the named layers' parameters (and buffers, such as
    batch norm's running statistics) are copied after the model is built from the seed."""

    from_job: JobId
    layers: Literal["all"] | list[str] = Field(
        default="all", description='"all" (every layer with weights), or paths such as ["layers[0]"]')
    freeze: list[str] = Field(default_factory=list,
                              description="layers whose parameters do not train (requires_grad False)")

    @field_validator("layers")
    @classmethod
    def _layer_paths(cls, layers):
        if layers == "all":
            return layers
        if not layers:
            raise ValueError('names no layer; use "all", or paths such as ["layers[0]"]')
        return _paths(layers)

    @field_validator("freeze")
    @classmethod
    def _freeze_paths(cls, freeze):
        return _paths(freeze)


class Distill(StrictModel):
    """Knowledge distillation (Hinton et al. 2015): loss = alpha * T^2 * KL(softmax(teacher / T) ||
    softmax(student / T)) + (1 - alpha) * the spec's loss. alpha 1: the teacher only; 0: the labels only."""

    teacher: JobId
    temperature: Annotated[float, Field(gt=0, le=100)] = 4.0
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.5


def layer_index(path: str) -> int:
    return int(LAYER_PATH.match(path).group(1))
