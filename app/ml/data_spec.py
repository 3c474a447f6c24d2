"""The job's data in the JSON contract: which dataset, and the options applied to it.

``dataset`` is an uploaded dataset id ("ds_..."), a builtin's name ("moons"), or a builtin
with parameters ({"name": "moons", "n_samples": 500}). The builtins' loaders are in
app/ml/builtin_datasets.py; their parameters, defaults and limits are declared here, once.
"""
from typing import Annotated, Literal, Union, get_args

from pydantic import BeforeValidator, Discriminator, Field, Tag, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from app.ml.strict import StrictModel

# Generated data is stored like an upload; this keeps one at or under ~20 MB of float32.
MAX_BUILTIN_VALUES = 5_000_000

Samples = Annotated[int, Field(ge=2, le=100_000, description="rows to generate")]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="seed of the generator: same seed, same rows")]
CoordNoise = Annotated[float, Field(ge=0, le=10, description="standard deviation of Gaussian "
                                    "noise added to each coordinate")]


class _Builtin(StrictModel):
    name: str

    def params(self) -> dict:
        return self.model_dump(exclude={"name"})

    def label(self) -> str:
        """A readable name for the materialized dataset: moons(n_samples=500,noise=0.2,seed=1)."""
        params = self.params()
        inner = ",".join(f"{k}={v}" for k, v in params.items())
        return f"{self.name}({inner})" if params else self.name


def _cap(value: int, info: ValidationInfo, *sizes: str) -> int:
    """Refuses a size whose product with the earlier size fields is over MAX_BUILTIN_VALUES.

    Run on the last size field, so the error names it and the others are already known."""
    if any(s not in info.data for s in sizes):
        return value  # an earlier field failed; its own error says why
    total = value
    for s in sizes:
        total *= info.data[s]
    if total > MAX_BUILTIN_VALUES:
        what = " * ".join([*sizes, info.field_name])
        raise PydanticCustomError("builtin_too_large", "{what} = {total} values is over the limit of {limit}",
                                  {"what": what, "total": f"{total:,}", "limit": f"{MAX_BUILTIN_VALUES:,}"})
    return value


class Iris(_Builtin):
    name: Literal["iris"]


class Digits(_Builtin):
    name: Literal["digits"]


class Wine(_Builtin):
    name: Literal["wine"]


class BreastCancer(_Builtin):
    name: Literal["breast_cancer"]


class Diabetes(_Builtin):
    name: Literal["diabetes"]


class Moons(_Builtin):
    name: Literal["moons"]
    n_samples: Samples = 200
    noise: CoordNoise = 0.1
    seed: Seed = 0


class Circles(_Builtin):
    name: Literal["circles"]
    n_samples: Samples = 200
    noise: CoordNoise = 0.05
    factor: float = Field(default=0.5, gt=0, lt=1, description="inner radius / outer radius")
    seed: Seed = 0


class Xor(_Builtin):
    name: Literal["xor"]
    n_samples: Samples = 200
    noise: CoordNoise = 0.1
    seed: Seed = 0


class Spirals(_Builtin):
    name: Literal["spirals"]
    n_samples: Samples = 300
    n_classes: int = Field(default=2, ge=2, le=10, description="spiral arms, one per class")
    turns: float = Field(default=1.0, gt=0, le=10, description="turns each arm makes")
    noise: CoordNoise = 0.05
    seed: Seed = 0


class Blobs(_Builtin):
    name: Literal["blobs"]
    n_samples: Samples = 300
    centers: int = Field(default=3, ge=1, le=100, description="clusters, one per class")
    n_features: int = Field(default=2, ge=1, le=1000)
    cluster_std: float = Field(default=1.0, gt=0, le=100, description="standard deviation of each cluster")
    seed: Seed = 0

    @field_validator("n_features")
    @classmethod
    def _size(cls, value: int, info: ValidationInfo) -> int:
        return _cap(value, info, "n_samples")


class Regression(_Builtin):
    name: Literal["regression"]
    n_samples: Samples = 200
    n_features: int = Field(default=5, ge=1, le=1000)
    n_informative: int | None = Field(default=None, ge=1, le=1000, description="how many of the features "
                                      "the targets depend on; null: all")
    n_targets: int = Field(default=1, ge=1, le=100, description="1: y is (rows,); k: y is (rows, k)")
    noise: float = Field(default=0.1, ge=0, le=1000, description="standard deviation of Gaussian "
                         "noise added to the targets")
    seed: Seed = 0

    @field_validator("n_features", "n_targets")
    @classmethod
    def _size(cls, value: int, info: ValidationInfo) -> int:
        return _cap(value, info, "n_samples")

    @field_validator("n_informative")
    @classmethod
    def _informative(cls, value: int | None, info: ValidationInfo) -> int | None:
        features = info.data.get("n_features")
        if value is not None and features is not None and value > features:
            raise PydanticCustomError("informative", "cannot exceed n_features ({f})", {"f": features})
        return value


class SineSequence(_Builtin):
    name: Literal["sine_sequence"]
    n_samples: Samples = 500
    seq_len: int = Field(default=20, ge=2, le=1000, description="time steps in each input window")
    period: float = Field(default=20.0, ge=2, le=10_000, description="time steps per sine cycle")
    noise: float = Field(default=0.05, ge=0, le=10, description="standard deviation of Gaussian noise "
                         "added to every observation, target included")
    seed: Seed = 0

    @field_validator("seq_len")
    @classmethod
    def _size(cls, value: int, info: ValidationInfo) -> int:
        return _cap(value, info, "n_samples")


BuiltinDataset = Annotated[
    Union[Iris, Digits, Wine, BreastCancer, Diabetes, Moons, Circles, Xor, Spirals, Blobs,
          Regression, SineSequence],
    Field(discriminator="name"),
]
BUILTIN_SPECS: dict[str, type[_Builtin]] = {
    get_args(m.model_fields["name"].annotation)[0]: m for m in get_args(get_args(BuiltinDataset)[0])
}

DatasetId = Annotated[str, Field(min_length=1, max_length=200, description="a dataset's id (ds_...)")]


def _builtin_by_name(value):
    """"moons" means the builtin moons with every default."""
    return {"name": value} if isinstance(value, str) else value


def _ref_kind(value) -> str:
    # Any other string is taken for an id: the pre-flight check says when there is no such
    # dataset. Tag names that are not identifiers are left out of the field paths users see.
    if isinstance(value, str) and value not in BUILTIN_SPECS:
        return "dataset-id"
    return "builtin-dataset"


DatasetRef = Annotated[
    Union[Annotated[DatasetId, Tag("dataset-id")],
          Annotated[BuiltinDataset, BeforeValidator(_builtin_by_name), Tag("builtin-dataset")]],
    Discriminator(_ref_kind),
]


class DataOptions(StrictModel):
    """Options applied to any dataset before training; see docs/datasets.md."""

    standardize: bool = Field(default=False, description="scale each feature to mean 0, std 1 with "
                              "statistics of the training rows only")
    targets: Literal["index", "one_hot"] = Field(default="index", description="class labels as "
                                                 "indices, or as one-hot float rows (for mse, bce)")
    validation_dataset: DatasetId | None = Field(default=None, description="validate on this dataset "
                                                 "instead of a fraction of the training one")

    @field_validator("validation_dataset", mode="before")
    @classmethod
    def _id_only(cls, value):
        if isinstance(value, dict) or (isinstance(value, str) and value in BUILTIN_SPECS):
            # The job row records one dataset id; a builtin gets one once a job has used it.
            raise PydanticCustomError("validation_ref", "must be a dataset id (ds_...), not a builtin; a "
                                      "builtin that a job has used is a dataset listed by GET /v1/datasets")
        return value
