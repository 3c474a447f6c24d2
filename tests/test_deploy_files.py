"""docker-compose.yml and the Dockerfile cannot run here, so their content is checked."""
import re
from pathlib import Path

import yaml
from typer.main import get_command

from app.cli import app as cli_app

ROOT = Path(__file__).resolve().parents[1]


def _cli_commands() -> set[str]:
    return set(get_command(cli_app).commands)


def test_compose_runs_api_worker_redis_and_postgres():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"api", "worker", "worker-gpu", "redis", "postgres", "migrate"} <= set(services)
    for name in ("api", "worker", "worker-gpu", "migrate"):
        svc = services[name]
        assert svc["build"] == ".", name
        cmd = svc["command"]
        assert cmd[0] == "trainyard" and cmd[1] in _cli_commands(), (name, cmd)
        env = svc["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://"), name
        assert env["BROKER_URL"].startswith("redis://redis:"), name
        # The API serves the weights the worker writes: both must see one artifact folder.
        assert f"artifacts:{env['ARTIFACT_DIR']}" in svc["volumes"], name
    assert "noeviction" in services["redis"]["command"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "8000:8000" in services["api"]["ports"]


def test_compose_has_a_gpu_worker_beside_a_cpu_one():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["worker"]["command"] == ["trainyard", "worker", "--cpu", "1"]
    gpu = services["worker-gpu"]
    assert gpu["command"] == ["trainyard", "worker"]  # one worker per GPU it is given
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == "all"
    # Started on request: a host without the NVIDIA toolkit still runs the rest.
    assert gpu["profiles"] == ["gpu"]


def test_dockerfile_copies_what_exists_and_installs_the_project():
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for src in line.split()[:-1]:
            assert (ROOT / src).exists(), src
    assert "pip install" in text
    cmd = re.search(r'^CMD \["trainyard", "(\w+)"', text, re.M)
    assert cmd and cmd.group(1) in _cli_commands()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make run" in readme
    assert re.search(r"^make test$", ci, re.M)
    assert "TRAINYARD_REQUIRE_SERVICES=1" in ci
