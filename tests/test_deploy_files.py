"""docker-compose.yml and the Dockerfile cannot run here, so what they mean is checked: the
services and their roles, commands the CLI accepts, start order, healthchecks, and one
database, broker and S3 store (MinIO) shared by the API and every worker, with no volume between them."""
import json
import re
from pathlib import Path

import shlex

import click
import yaml
from sqlalchemy.engine import make_url
from typer.main import get_command

from app.cli import app as cli_app
from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]
TRAINYARD = ("migrate", "api", "worker", "worker-gpu")  # the services built from the image
SERVERS = ("api", "worker", "worker-gpu")  # started once migrate has succeeded
MONITORING = ("prometheus", "grafana")  # images of their own, configured from deploy/


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # resolves the << merges


def parse_command(command: list[str]) -> click.Context:
    """The CLI's parse of a `trainyard ...` command: fails on an unknown command or option."""
    assert command[0] == "trainyard", command
    cli = get_command(cli_app)
    assert command[1] in cli.commands, command
    return cli.commands[command[1]].make_context(command[1], list(command[2:]))


def test_compose_has_the_production_set():
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "minio", "minio-bucket", *TRAINYARD, *MONITORING}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")
    assert services["minio-bucket"]["image"].startswith("minio/mc:RELEASE.")
    assert services["prometheus"]["image"].startswith("prom/prometheus:v")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    for name in TRAINYARD:
        assert services[name]["build"] == ".", name
    # Started on request: a host without the NVIDIA toolkit still runs the rest.
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    assert all("profiles" not in services[name] for name in services if name != "worker-gpu")


def test_each_service_runs_a_command_the_cli_accepts():
    services = compose()["services"]
    assert parse_command(services["migrate"]["command"]).info_name == "migrate"
    api = parse_command(services["api"]["command"]).params
    assert api["host"] == "0.0.0.0"  # reachable from outside its container
    assert f"{api['port']}:{api['port']}" in services["api"]["ports"]
    assert parse_command(services["worker"]["command"]).params["cpu"] == 1
    gpu = parse_command(services["worker-gpu"]["command"]).params
    assert not gpu.get("cpu")  # one worker per GPU it is given
    [device] = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == "all"


def test_services_start_in_order_and_wait_for_health():
    services = compose()["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in SERVERS:
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"},
                                                "redis": {"condition": "service_healthy"},
                                                "minio-bucket": {"condition": "service_completed_successfully"}}, name
    assert services["minio-bucket"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    waited_on = {dep for svc in services.values() for dep, how in svc.get("depends_on", {}).items()
                 if how["condition"] == "service_healthy"}
    assert waited_on == {"postgres", "redis", "minio"}
    for name in waited_on:  # a condition on health needs a healthcheck, or compose never starts
        check = services[name]["healthcheck"]
        assert check["test"][0] == "CMD" and check["retries"] >= 1, name
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert services["minio"]["healthcheck"]["test"][1:] == ["mc", "ready", "local"]


def _settings(service: dict) -> Settings:
    return Settings(_env_file=None, **{k.lower(): v for k, v in service["environment"].items()})


def test_the_api_and_every_worker_share_one_database_broker_and_store():
    spec = compose()
    services = spec["services"]
    settings = {name: _settings(services[name]) for name in TRAINYARD}
    urls = {(s.resolved_database_url, s.resolved_broker_url, s.resolved_artifact_url, s.s3_endpoint_url,
             s.queue_name) for s in settings.values()}
    assert len(urls) == 1, urls
    [(database, broker, artifacts, endpoint, _)] = urls
    db = make_url(database)
    pg = services["postgres"]["environment"]
    assert db.drivername == "postgresql+psycopg" and db.host == "postgres"
    assert (db.username, db.password, db.database) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"],
                                                       pg["POSTGRES_DB"])
    assert re.fullmatch(r"redis://redis:6379/\d+", broker)
    # A full Redis must refuse new messages, never drop queued jobs.
    command = services["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_the_store_is_minio_with_its_bucket_and_no_volume_is_shared():
    services = compose()["services"]
    minio = services["minio"]
    assert minio["command"][:2] == ["server", "/data"]
    root = (minio["environment"]["MINIO_ROOT_USER"], minio["environment"]["MINIO_ROOT_PASSWORD"])
    bucket = re.fullmatch(r"s3://([a-z0-9.-]+)/\w+", _settings(services["api"]).artifact_url).group(1)
    assert _settings(services["api"]).s3_endpoint_url == "http://minio:9000"
    for name in TRAINYARD:
        env = services[name]["environment"]
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == root, name
        # Each service could run on a machine of its own: no volume between them.
        assert "volumes" not in services[name], name
    # The one-shot makes the very bucket ARTIFACT_URL names, with MinIO's credentials.
    script = shlex.split(services["minio-bucket"]["entrypoint"][2])
    alias = script.index("alias")
    assert script[alias + 1:alias + 6] == ["set", "store", "http://minio:9000", *root]
    assert script[script.index("mb") + 1:] == ["--ignore-existing", f"store/{bucket}"]


def test_dockerfile_installs_the_project_and_runs_the_apis_command():
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for src in line.split()[:-1]:
            assert (ROOT / src).exists(), src
    runs = re.findall(r"^RUN (.+)$", text, re.M)
    # The project itself, so its dependencies as pyproject.toml pins them (torch included)...
    assert any(re.search(r"pip install .*(\s\.$|\s\.\s)", run) for run in runs), runs
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"torch==\d+\.\d+\.\d+"', pyproject)
    # ...and no other torch beside it.
    assert not any("torch" in run for run in runs), runs
    cmd = json.loads(re.search(r"^CMD (\[.+\])$", text, re.M).group(1))
    assert cmd == compose()["services"]["api"]["command"]
    parse_command(cmd)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make run" in readme
    assert re.search(r"^make test$", ci, re.M)
    assert "TRAINYARD_REQUIRE_SERVICES=1" in ci


def mounts(service: dict) -> dict[str, Path]:
    """Container path -> the repository file or folder bind-mounted there (named volumes left out)."""
    out = {}
    for volume in service["volumes"]:
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            out[target] = ROOT / source
    return out


def test_the_production_set_logs_json_lines():
    services = compose()["services"]
    for name in TRAINYARD:
        assert _settings(services[name]).log_format == "json", name


def test_prometheus_scrapes_the_apis_metrics_route():
    services = compose()["services"]
    prometheus = services["prometheus"]
    config_path = prometheus["command"][0].removeprefix("--config.file=")
    config = yaml.safe_load(mounts(prometheus)[config_path].read_text())
    [job] = config["scrape_configs"]
    api_port = parse_command(services["api"]["command"]).params["port"]
    # The API alone: it reads every worker's state from the database, and the workers serve no HTTP.
    assert job["static_configs"] == [{"targets": [f"api:{api_port}"]}]
    from app.main import app

    assert "get" in app.openapi()["paths"][job["metrics_path"]]
    assert prometheus["depends_on"] == {"api": {"condition": "service_started"}}
    assert mounts(prometheus)[config_path].is_file()


def grafana_files() -> tuple[dict, dict, dict[str, Path]]:
    """The provisioned datasource, the dashboard provider, and the mounts of the grafana service."""
    grafana = compose()["services"]["grafana"]
    mounted = mounts(grafana)
    provisioning = mounted["/etc/grafana/provisioning"]
    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    [provider] = yaml.safe_load((provisioning / "dashboards" / "trainyard.yml").read_text())["providers"]
    return datasource, provider, mounted


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard():
    services = compose()["services"]
    datasource, provider, mounted = grafana_files()
    port = services["prometheus"]["ports"][0].split(":")[-1]
    assert datasource["type"] == "prometheus" and datasource["url"] == f"http://prometheus:{port}"
    dashboards = mounted[provider["options"]["path"]]
    assert sorted(p.name for p in dashboards.glob("*.json")) == ["trainyard.json"]
    dashboard = json.loads((dashboards / "trainyard.json").read_text())
    assert dashboard["uid"] == "trainyard" and dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert all(t["datasource"]["uid"] == datasource["uid"] for t in panel["targets"]), panel["title"]


def exposed_names() -> set[str]:
    """Every sample name GET /metrics can show: the request metrics and the database's families."""
    from prometheus_client import REGISTRY

    from app.monitoring.router import SnapshotCollector
    from app.monitoring.service import Snapshot

    families = [*REGISTRY.collect(), *SnapshotCollector(Snapshot({}, {}, {}, {}), 0.0).collect()]
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {f.name + suffix for f in families for suffix in suffixes.get(f.type, ("",))}


def test_every_dashboard_query_names_a_metric_the_api_exposes():
    import app.monitoring.requests  # noqa: F401  (registers the request metrics)

    _, provider, mounted = grafana_files()
    dashboard = json.loads((mounted[provider["options"]["path"]] / "trainyard.json").read_text())
    names = exposed_names()
    queried = {name for panel in dashboard["panels"] for t in panel["targets"]
               for name in re.findall(r"\btrainyard_\w+", t["expr"])}
    assert queried and queried <= names, queried - names
