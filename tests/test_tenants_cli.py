"""`trainyard tenants set-quota | show`: the operator's quota overrides, run against the database
(no API process needed), on a migrated SQLite file."""
import os
import subprocess
import sys

import pytest
from sqlalchemy.orm import sessionmaker

from app.auth import service
from app.db import make_engine
from app.migrate import upgrade
from app.models import Tenant
from tests.stack import ROOT


@pytest.fixture
def env(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'tenants.db'}"
    upgrade(url)
    monkeypatch.setattr(service, "_tenants", {})
    return {**os.environ, "DATA_DIR": str(tmp_path), "DATABASE_URL": url, "COLUMNS": "200",
            "QUOTA_JOBS": "50"}


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def tenant(env: dict, name: str) -> Tenant:
    engine = make_engine(env["DATABASE_URL"])
    with sessionmaker(bind=engine, expire_on_commit=False)() as db:
        found = db.query(Tenant).filter_by(name=name).one()
    engine.dispose()
    return found


def test_set_quota_overrides_some_keeps_the_rest_and_default_clears(env):
    assert cli(env, "keys", "create", "laptop", "--tenant", "acme").returncode == 0
    done = cli(env, "tenants", "set-quota", "acme", "--jobs", "5", "--running-jobs", "2", "--stored-bytes", "1GiB")
    assert done.returncode == 0, done.stderr
    row = tenant(env, "acme")
    assert (row.quota_jobs, row.quota_running_jobs, row.quota_study_members, row.quota_stored_bytes) == \
        (5, 2, None, 2**30)
    lines = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.strip()}
    assert lines["jobs"][1:] == ["5", "0", "tenant"]
    assert lines["stored_bytes"][1:] == ["1,073,741,824", "0", "tenant"]
    assert lines["study_members"][-1] == "default"

    assert cli(env, "tenants", "set-quota", row.id, "--jobs", "default").returncode == 0  # by id too
    assert tenant(env, "acme").quota_jobs is None
    shown = cli(env, "tenants", "show", "acme")
    assert shown.returncode == 0 and "50" in shown.stdout  # QUOTA_JOBS, the server's default


def test_bad_values_and_unknown_tenants_are_refused_naming_them(env):
    assert cli(env, "keys", "create", "laptop", "--tenant", "acme").returncode == 0
    bad = cli(env, "tenants", "set-quota", "acme", "--stored-bytes", "lots")
    assert bad.returncode == 2 and "--stored-bytes" in bad.stderr
    assert cli(env, "tenants", "set-quota", "acme").returncode == 2  # nothing to set
    unknown = cli(env, "tenants", "show", "nobody")
    assert unknown.returncode == 1 and "no tenant named 'nobody'" in unknown.stderr
