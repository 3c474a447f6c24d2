"""Running the service: keys, migrations, and the API and worker processes."""
import os
import signal
import subprocess
import sys
import time

import typer

from app.cli.base import app, console

keys = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys, name="keys")


@keys.command("create")
def keys_create(name: str = typer.Argument(..., help="A name for the key, e.g. 'laptop'"),
                tenant: str = typer.Option(None, help="Tenant to add the key to (default: NAME)")):
    """Creates an API key and prints it once; only its SHA-256 digest is stored."""
    from app.auth.service import create_key
    from app.db import session_scope

    with session_scope() as session:
        created = create_key(db_session=session, name=name, tenant_name=tenant or name)
    if sys.stdout.isatty():
        console.print(f"API key for tenant [bold]{created.tenant_name}[/] (shown once, keep it):")
    print(created.key)


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
        planned = plan(gpus, _devices(devices), cpu)
    except PlanError as exc:
        raise typer.BadParameter(str(exc)) from None
    for p in planned:
        memory = f", {p.identity.memory_bytes / 2**30:.0f} GiB" if p.identity.memory_bytes else ""
        console.print(f"worker {p.identity.name}: {p.identity.device_name}{memory}", style="green",
                      highlight=False)
    if len(planned) == 1:  # one worker: no supervising process in between
        os.environ[ENV] = planned[0].identity.to_env()
        os.environ["CUDA_VISIBLE_DEVICES"] = planned[0].cuda_visible_devices
        _celery_worker(loglevel)
        return
    raise typer.Exit(supervise(planned, [sys.executable, "-m", "app.cli", "worker", "--loglevel", loglevel]))


def _celery_worker(loglevel: str) -> None:
    from app.config import get_settings
    from worker.celery_app import celery_app
    from worker.identity import current

    me = current()
    celery_app.worker_main([
        "worker", "--concurrency=1", f"--loglevel={loglevel}", f"--hostname={me.name}",
        f"--queues={get_settings().queue_for(me.kind)}",
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
