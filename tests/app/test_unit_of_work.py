"""app/db.py's unit of work: one commit per request, before the answer; after-commit steps
only after a commit. The app runs in-process on a fresh SQLite database."""
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.auth.service import create_key
from app.db import after_commit, get_session_factory, session_scope
from app.main import create_app
from app.models import Dataset, Tenant
from app.datasets import stored
from app.storage import get_store
from tests.embedded import embedded  # noqa: F401

INLINE = {"name": "tiny", "x": [[0.0, 1.0], [1.0, 0.0]], "y": [0, 1]}


@pytest.fixture
def api(embedded):  # noqa: F811
    with session_scope() as s:
        key = create_key(db_session=s, name="k", tenant_name="uow").key
    with TestClient(create_app(), headers={"Authorization": f"Bearer {key}"},
                    raise_server_exceptions=False) as client:
        yield client


def datasets() -> int:
    with get_session_factory()() as s:
        return s.scalar(select(func.count()).select_from(Dataset))


def failing_commits(monkeypatch) -> None:
    def commit(self):
        raise OperationalError("COMMIT", {}, Exception("the database went away"))

    monkeypatch.setattr(Session, "commit", commit)


def test_a_scope_commits_then_runs_its_steps_and_a_failed_one_runs_none(embedded):  # noqa: F811
    ran = []
    with session_scope() as s:
        s.add(Tenant(id="tn_a", name="a"))
        after_commit(s, lambda: ran.append(s.get(Tenant, "tn_a") is not None))
        assert ran == []
    assert ran == [True]
    with pytest.raises(RuntimeError), session_scope() as s:
        s.add(Tenant(id="tn_b", name="b"))
        after_commit(s, lambda: ran.append("after a rollback"))
        s.flush()
        raise RuntimeError("the route failed")
    with session_scope() as s:
        assert s.get(Tenant, "tn_b") is None
    assert ran == [True]


def test_a_request_whose_commit_fails_is_a_503_and_changes_nothing(api, monkeypatch):
    assert api.get("/v1/datasets").status_code == 200  # the key's tenant is now in memory
    failing_commits(monkeypatch)
    r = api.post("/v1/datasets", json=INLINE)
    # The commit runs before the answer is sent (SessionDep's scope="function"): a
    # commit after sending would have answered 201 for a dataset that is not there.
    assert r.status_code == 503, r.text
    monkeypatch.undo()
    assert datasets() == 0


def test_a_dataset_file_is_deleted_only_once_its_row_deletion_is_committed(api, monkeypatch):
    ds = api.post("/v1/datasets", json=INLINE).json()
    with get_session_factory()() as s:
        row = s.get(Dataset, ds["id"])
    sha = row.sha256
    assert stored.exists(get_store(), sha)
    failing_commits(monkeypatch)
    assert api.delete(f"/v1/datasets/{ds['id']}").status_code == 503
    monkeypatch.undo()
    assert stored.exists(get_store(), sha) and datasets() == 1
    assert api.delete(f"/v1/datasets/{ds['id']}").status_code == 204
    assert not stored.exists(get_store(), sha) and datasets() == 0
