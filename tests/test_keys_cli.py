"""`trainyard keys create | list | revoke`: the operator's commands, run on the server against
the database (no API process needed), on a migrated SQLite file."""
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from sqlalchemy.orm import sessionmaker

from app.auth import service
from app.db import make_engine
from app.migrate import upgrade
from app.models import ApiKey
from tests.stack import ROOT


@pytest.fixture
def env(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade(url)
    monkeypatch.setattr(service, "_tenants", {})
    return {**os.environ, "DATA_DIR": str(tmp_path), "DATABASE_URL": url, "COLUMNS": "200"}


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "keys", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def rows(env: dict) -> dict[str, ApiKey]:
    engine = make_engine(env["DATABASE_URL"])
    with sessionmaker(bind=engine, expire_on_commit=False)() as db:
        found = {row.name: row for row in db.query(ApiKey)}
    engine.dispose()
    return found


def tenant_of(env: dict, key: str):
    """What a fresh API process would answer for the key: this test process's own cache of live
    keys (AUTH_CACHE_SECONDS, filled by an earlier lookup here) is forgotten first."""
    service._tenants.clear()
    engine = make_engine(env["DATABASE_URL"])
    try:
        with sessionmaker(bind=engine)() as db:
            return service.tenant_for_key(db_session=db, key=key)
    finally:
        engine.dispose()


def test_create_with_an_expiry_list_without_secrets_and_revoke(env):
    made = cli(env, "create", "laptop", "--tenant", "acme", "--expires", "2099-01-01")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("ty_") and rows(env)["laptop"].expires_at == datetime(2099, 1, 1, tzinfo=timezone.utc)
    assert cli(env, "create", "ci", "--tenant", "acme").returncode == 0
    assert cli(env, "create", "theirs").returncode == 0
    assert tenant_of(env, key) == rows(env)["laptop"].tenant_id

    listing = cli(env, "list", "--tenant", "acme")
    assert listing.returncode == 0, listing.stderr
    laptop = rows(env)["laptop"]
    assert laptop.id in listing.stdout and rows(env)["ci"].id in listing.stdout
    assert rows(env)["theirs"].id not in listing.stdout
    assert key not in listing.stdout and laptop.key_hash not in listing.stdout
    assert "2099-01-01 00:00" in listing.stdout and "active" in listing.stdout
    assert rows(env)["theirs"].id in cli(env, "list").stdout  # every tenant's without --tenant

    revoked = cli(env, "revoke", laptop.id)
    assert revoked.returncode == 0, revoked.stderr
    assert f"{laptop.id} revoked" in revoked.stdout
    assert rows(env)["laptop"].revoked_at is not None and rows(env)["ci"].revoked_at is None
    assert tenant_of(env, key) is None
    assert "revoked" in cli(env, "list", "--tenant", "acme").stdout


@pytest.mark.parametrize("args,words", [
    (("create", "x", "--expires", "2020-01-01"), "must be in the future"),
    (("create", "x", "--expires", "soon"), "valid datetime"),
    (("list", "--tenant", "nobody"), "no tenant named 'nobody'"),
], ids=["past expiry", "not a time", "unknown tenant"])
def test_bad_options_exit_2_naming_the_option_and_change_nothing(env, args, words):
    refused = cli(env, *args)
    assert refused.returncode == 2
    option = args[2]
    assert option in refused.stderr and words in " ".join(refused.stderr.split()), refused.stderr
    assert rows(env) == {}


def test_revoking_an_unknown_key_exits_1(env):
    refused = cli(env, "revoke", "key_nope")
    assert refused.returncode == 1 and "no API key 'key_nope'" in refused.stderr
