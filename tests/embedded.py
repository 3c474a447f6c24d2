"""An embedded deployment inside the test process: a fresh SQLite database and artifact
folder under tmp_path, seen by the API's routes and the worker's runner alike.

Tests import the fixture (``from tests.embedded import embedded``) to call the runner
or the FastAPI app directly, without the subprocesses of tests/stack.py.
"""

import numpy as np
import pytest

from app import config, db
from app.datasets import stored
from app.migrate import upgrade
from app.models import Dataset, Job, Tenant
from app.models.base import new_id
from app.storage import get_store

TENANT = "tn_test"


def _forget_settings() -> None:
    if db.get_engine.cache_info().currsize:
        db.get_engine().dispose()
    for cached in (config.get_settings, db.get_engine, db.get_session_factory):
        cached.cache_clear()


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """Settings, engine and sessions that point at tmp_path; put back afterwards."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", "")
    monkeypatch.setenv("WORKER_ID", "test-worker")
    _forget_settings()
    settings = config.get_settings()
    settings.data_dir.mkdir(parents=True)
    upgrade(settings.resolved_database_url)
    with db.get_session_factory()() as s:
        s.add(Tenant(id=TENANT, name="test"))
        s.commit()
    yield settings
    _forget_settings()


def add_dataset(x: np.ndarray, y: np.ndarray) -> str:
    """Stores (x, y) as an uploaded dataset would be; returns its id."""
    sha = new_id("sha")
    stored.write_arrays(get_store(), sha, x, y)
    kind = "integer" if np.issubdtype(y.dtype, np.integer) else "float"
    with db.get_session_factory()() as s:
        ds = Dataset(id=new_id("ds"), tenant_id=TENANT, name="test.npz", source_format="npz", sha256=sha,
                     bytes=stored.stored_bytes(get_store(), sha), rows=len(x), feature_shape=list(x.shape[1:]),
                     target_shape=list(y.shape[1:]), target_kind=kind, target_min=float(y.min()),
                     target_max=float(y.max()))
        s.add(ds)
        s.commit()
        return ds.id


def add_job(spec: dict, dataset_id: str) -> str:
    """A queued job, as POST /v1/jobs leaves it (the pre-flight check is not run here)."""
    with db.get_session_factory()() as s:
        job = Job(id=new_id("job"), tenant_id=TENANT, dataset_id=dataset_id, status="queued",
                  spec={**spec, "dataset": dataset_id}, input_shape=[0], parameter_count=0,
                  queue="cpu")
        s.add(job)
        s.commit()
        return job.id


def get_job(job_id: str) -> Job:
    with db.get_session_factory()() as s:
        return s.get(Job, job_id)
