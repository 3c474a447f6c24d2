"""GET /v1/schema/spec: the job spec's JSON Schema, for editors and client generators."""
from functools import lru_cache

from fastapi import APIRouter

from app.deps import CurrentTenant
from app.ml.spec import JobSpec

router = APIRouter(prefix="/v1/schema", tags=["schema"])


@lru_cache
def _spec_schema() -> dict:
    return JobSpec.model_json_schema()


@router.get("/spec")
def spec_schema(_: CurrentTenant) -> dict:
    """The JSON Schema of POST /v1/jobs's body (docs/spec.md explains each field)."""
    return _spec_schema()
