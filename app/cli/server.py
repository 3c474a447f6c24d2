"""Running the service: keys, tenants' quotas, migrations, and the API and worker processes."""
import os
import signal
import subprocess
import sys
import time

import typer
from rich.markup import escape

from app.cli.base import app, console, errors

keys = typer.Typer(help="API keys (run on the server: these commands use the database directly; a tenant "
                        "manages its own keys over the API, /v1/keys).", no_args_is_help=True)
app.add_typer(keys, name="keys")


def _expiry(value: str | None):
    """--expires as POST /v1/keys reads expires_at: ISO 8601, UTC when it names no zone."""
    if value is None:
        return None
    from pydantic import ValidationError

    from app.auth.schemas import KeyCreate

    try:
        return KeyCreate(name="-", expires_at=value).expires_at
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"], param_hint="--expires") from None


@keys.command("create")
def keys_create(name: str = typer.Argument(..., help="A name for the key, e.g. 'laptop'"),
                tenant: str = typer.Option(None, help="Tenant to add the key to (default: NAME)"),
                expires: str = typer.Option(None, help="When the key stops working: ISO 8601, e.g. 2027-01-01 "
                                                       "(UTC unless it names a zone); default: never")):
    """Creates an API key and prints it once; only its SHA-256 digest is stored."""
    from app.auth.service import create_key
    from app.db import session_scope
    from app.errors import ApiError

    expires_at = _expiry(expires)
    try:
        with session_scope() as session:
            created = create_key(db_session=session, name=name, tenant_name=tenant or name, expires_at=expires_at)
    except ApiError as exc:
        raise typer.BadParameter(exc.message, param_hint="--expires") from None
    if sys.stdout.isatty():
        until = f", expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
        console.print(f"API key for tenant [bold]{created.tenant_name}[/]{until} (shown once, keep it):")
    print(created.key)


@keys.command("list")
def keys_list(tenant: str = typer.Option(None, help="Only this tenant's keys (default: every tenant's)"),
              limit: int = typer.Option(200, min=1, help="At most this many, newest first")):
    """Lists API keys: id, tenant, name, prefix, created, last used, expiry, status; never a key itself."""
    from rich import box
    from rich.table import Column, Table
    from sqlalchemy import select

    from app.auth.schemas import KeyRead
    from app.auth.service import list_page
    from app.db import session_scope
    from app.models import Tenant

    with session_scope() as session:
        names = dict(session.execute(select(Tenant.id, Tenant.name)).tuples().all())
        tenant_id = next((i for i, n in names.items() if n == tenant), None)
        if tenant is not None and tenant_id is None:
            raise typer.BadParameter(f"no tenant named {tenant!r}", param_hint="--tenant")
        rows, total = list_page(db_session=session, tenant_id=tenant_id, limit=limit, offset=0)
        listed = [(names[row.tenant_id], KeyRead.model_validate(row)) for row in rows]
    table = Table(Column("id", no_wrap=True), "tenant", "name", "prefix", "created", "last used", "expires",
                  "status", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for tenant_name, k in listed:
        table.add_row(k.id, escape(tenant_name), escape(k.name), k.prefix,
                      _when(k.created_at), _when(k.last_used_at), _when(k.expires_at), k.status)
    console.print(table)
    if total > len(listed):
        console.print(f"{len(listed)} of {total} keys (--limit for more)")


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


@keys.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (key_...), from `trainyard keys list`")):
    """Revokes a key; API processes refuse it within AUTH_CACHE_SECONDS (they remember live keys that long)."""
    from app.auth.service import revoke
    from app.config import get_settings
    from app.db import session_scope
    from app.errors import ApiError

    try:
        with session_scope() as session:
            row = revoke(db_session=session, key_id=key_id, tenant_id=None)
            revoked_at = row.revoked_at
    except ApiError as exc:
        errors.print(f"[red]error:[/] {escape(exc.message)}")
        raise typer.Exit(1) from None
    console.print(f"{key_id} revoked at {revoked_at:%Y-%m-%d %H:%M:%S} UTC; running API processes refuse it "
                  f"within {get_settings().auth_cache_seconds:g} s", highlight=False)


tenants = typer.Typer(help="Tenants' quotas (run on the server: these commands use the database directly).",
                      no_args_is_help=True)
app.add_typer(tenants, name="tenants")
QUOTA_OPTIONS = {"jobs": "--jobs", "running_jobs": "--running-jobs", "study_members": "--study-members",
                 "stored_bytes": "--stored-bytes"}


@tenants.command("set-quota")
def tenants_set_quota(
        tenant: str = typer.Argument(..., help="The tenant's name (as `trainyard keys create --tenant` took it) or id"),
        jobs: str = typer.Option(None, help="Queued + running jobs outside studies (0: no limit; 'default')"),
        running_jobs: str = typer.Option(None, help="Jobs running at once; more wait queued (0: no limit; 'default')"),
        study_members: str = typer.Option(None, help="Members of its studies not yet ended (0: no limit; 'default')"),
        stored_bytes: str = typer.Option(None, help="Datasets + job artifacts, e.g. 10GiB (0: no limit; 'default')")):
    """Overrides a tenant's quotas (the others keep theirs), then prints its quotas and use."""
    from app.quotas import service as quotas

    given = {"jobs": jobs, "running_jobs": running_jobs, "study_members": study_members,
             "stored_bytes": stored_bytes}
    values = {}
    for name, text in given.items():
        if text is None:
            continue
        try:
            values[name] = quotas.parse_amount(text, byte_units=name == "stored_bytes")
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=QUOTA_OPTIONS[name]) from None
    if not values:
        raise typer.BadParameter("give at least one of " + ", ".join(QUOTA_OPTIONS.values()))
    _with_tenant(tenant, lambda session, row: quotas.set_quotas(db_session=session, tenant=row, values=values))


@tenants.command("show")
def tenants_show(tenant: str = typer.Argument(..., help="The tenant's name or id")):
    """A tenant's quotas (its own or the server's default) and what it uses of each."""
    _with_tenant(tenant, lambda session, row: None)


def _with_tenant(tenant: str, change) -> None:
    from rich import box
    from rich.table import Table

    from app.db import session_scope
    from app.errors import ApiError
    from app.quotas import service as quotas

    try:
        with session_scope() as session:
            row = quotas.find_tenant(db_session=session, tenant=tenant)
            change(session, row)
            limits, use = quotas.limits_of(row), quotas.usage(db_session=session, tenant_id=row.id)
            own = {name: getattr(row, column) is not None for name, (column, _) in quotas.QUOTAS.items()}
            name = row.name
    except ApiError as exc:
        errors.print(f"[red]error:[/] {escape(exc.message)}")
        raise typer.Exit(1) from None
    table = Table("quota", "limit", "in use", "set", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                  title=f"tenant {escape(name)}")
    for quota in quotas.QUOTAS:
        table.add_row(quota, f"{limits[quota]:,}" if limits[quota] else "no limit", f"{use[quota]:,}",
                      "tenant" if own[quota] else "default")
    console.print(table)


@app.command()
def migrate():
    """Applies the database migrations (Alembic) up to the latest."""
    from app.migrate import upgrade

    upgrade()
    console.print("database is up to date", style="green")


@app.command()
def api(host: str = "127.0.0.1", port: int = 8000, workers: int = 1):
    """Starts the HTTP API (uvicorn)."""
    import uvicorn

    from app.config import get_settings
    from app.logs import configure

    configure()
    # JSON: uvicorn's own lines (startup, access) go through the root logger's JSON handler
    # rather than uvicorn's text handlers.
    json_logs = get_settings().log_format == "json"
    uvicorn.run("app.main:app", host=host, port=port, workers=workers, log_level="info",
                **({"log_config": None} if json_logs else {}))


def _devices(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter("give GPU indexes separated by commas, e.g. 0,1") from None


@app.command()
def worker(devices: str = typer.Option(None, help="GPUs to use, e.g. 0,1 (default: every GPU torch sees)"),
           cpu: int = typer.Option(None, help="CPU workers to start (default: 1 when there is no GPU)"),
           threads: int = typer.Option(None, help="torch threads per worker (default: the cores this "
                                                  "process may use, split equally between the workers)"),
           gpus_per_worker: int = typer.Option(1, help="GPUs each worker owns: a job with training.devices "
                                                      "up to this many trains on them as data parallel ranks"),
           loglevel: str = "INFO"):
    """Starts one worker process per GPU (gpu queue), or CPU workers (cpu queue)."""
    from worker.identity import ENV

    if os.environ.get(ENV):  # started by a supervising `trainyard worker`: be that one worker
        _celery_worker(loglevel)
        return
    from worker.supervisor import PlanError, plan, probe_gpus, supervise

    wants_gpus = bool(devices) or (devices is None and cpu is None)
    gpus = probe_gpus() if wants_gpus else []
    try:
        planned = plan(gpus, _devices(devices), cpu, threads=threads, gpus_per_worker=gpus_per_worker)
    except PlanError as exc:
        raise typer.BadParameter(str(exc)) from None
    for p in planned:
        memory = f", {p.identity.memory_bytes / 2**30:.0f} GiB" if p.identity.memory_bytes else ""
        console.print(f"worker {p.identity.name}: {p.identity.device_name}{memory}, "
                      f"{p.identity.threads} torch thread(s)", style="green", highlight=False)
    if len(planned) == 1:  # one worker: no supervising process in between
        os.environ[ENV] = planned[0].identity.to_env()
        os.environ["CUDA_VISIBLE_DEVICES"] = planned[0].cuda_visible_devices
        _celery_worker(loglevel)
        return
    raise typer.Exit(supervise(planned, [sys.executable, "-m", "app.cli", "worker", "--loglevel", loglevel]))


def _celery_worker(loglevel: str) -> None:
    from app.config import get_settings
    from app.workers.routing import queues_of
    from worker.celery_app import celery_app
    from worker.identity import current

    me = current()
    queues = ",".join(get_settings().queue_for(q) for q in queues_of(me.kind, me.devices))
    celery_app.worker_main([
        "worker", "--concurrency=1", f"--loglevel={loglevel}", f"--hostname={me.name}",
        f"--queues={queues}",
        "--without-gossip", "--without-mingle", "--pool=prefork",
    ])


@app.command()
def run(host: str = "127.0.0.1", port: int = 8000):
    """Migrates, prints a fresh API key, and runs the API plus one worker until Ctrl-C."""
    migrate()
    from app.auth.service import create_key
    from app.db import session_scope

    with session_scope() as session:
        created = create_key(db_session=session, name=f"run-{int(time.time())}", tenant_name="default")
    console.print(f"\nAPI key for tenant [bold]default[/] (shown once):\n[bold green]{created.key}[/]")
    console.print(f"export TRAINYARD_API_KEY={created.key}\n"
                  f"API: http://{host}:{port}  (docs: http://{host}:{port}/docs)\n")
    cmd = [sys.executable, "-m", "app.cli"]
    procs = [subprocess.Popen([*cmd, "api", "--host", host, "--port", str(port)]),
             subprocess.Popen([*cmd, "worker"])]

    signalled: set[int] = set()

    def stop(*_):
        # Once per process: a process-group kill has already reached them, and every extra
        # SIGTERM is another run of a handler that was not written to be interrupted.
        for p in procs:
            if p.poll() is None and p.pid not in signalled:
                signalled.add(p.pid)
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        deadline = time.monotonic() + 25  # both, together: inside a 30 s grace period
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                console.print(f"{' '.join(p.args[3:4])} (pid {p.pid}) did not stop in time; killed",
                              style="red")
                p.kill()
                p.wait()
    # Ended by the SIGTERM we sent (still starting, no handler yet) is the stop we asked for.
    raise typer.Exit(0 if all(p.returncode in (0, -signal.SIGTERM) for p in procs) else 1)
