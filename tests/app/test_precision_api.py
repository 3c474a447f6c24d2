"""training.precision through POST /v1/jobs: refusals are 422s naming the field, and the
published schema lists the choice. The app runs in-process on a fresh SQLite database."""
import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_key
from app.db import get_session_factory
from app.main import create_app
from tests.embedded import embedded  # noqa: F401


@pytest.fixture
def api(embedded):  # noqa: F811
    with get_session_factory()() as s:
        key = create_key(db_session=s, name="k", tenant_name="precision").key
        s.commit()
    with TestClient(create_app(), headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def spec(**training) -> dict:
    return {"dataset": "moons", "model": {"layers": [{"type": "linear", "out_features": 2}]},
            "loss": {"type": "cross_entropy"}, "optimizer": {"type": "sgd", "lr": 0.1},
            "training": {"epochs": 2, **training}}


def errors(response) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.json()["errors"]}


@pytest.mark.parametrize("body, words", [
    (spec(precision="bf16", device="cpu"), "bf16 needs a GPU: on the CPU mixed precision is slower than "
                                           "fp32; use device cuda or auto, or precision fp32"),
    ({**spec(precision="fp16", batch_size="full"), "optimizer": {"type": "lbfgs"}},
     "fp16 cannot train with lbfgs"),
    (spec(precision="fp8"), "'fp32', 'bf16' or 'fp16'"),
])
def test_precision_refusals_are_422_naming_the_field(api, body, words):
    r = api.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    assert words in errors(r)["training.precision"]


def test_bf16_on_auto_passes_the_check(api):
    r = api.post("/v1/jobs?dry_run=true", json=spec(precision="bf16"))
    assert r.status_code == 200, r.text


def test_the_schema_publishes_precision(api):
    schema = api.get("/v1/schema/spec").json()
    assert "precision" in str(schema) and "fp16" in str(schema)
