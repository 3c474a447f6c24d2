"""Jobs from the command line: submit, status, list, cancel, delete."""
import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Column, Table

from app.cli.base import ApiKey, Url, app, connect, console, errors, reported


def read_spec(path: Path, *, what: str = "the job spec") -> dict:
    """The JSON object in ``path`` (``what`` it should be, for the error); exit 2 when it is not one."""
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        errors.print(f"[red]error:[/] cannot read {what} {path}: {exc}")
        raise typer.Exit(2)
    if not isinstance(spec, dict):
        errors.print(f"[red]error:[/] {path} must hold a JSON object ({what})")
        raise typer.Exit(2)
    return spec


LabelOption = Annotated[list[str] | None, typer.Option(
    "--label", "-l", metavar="KEY=VALUE", help="A label (KEY:VALUE also works); repeat it for more")]


def parse_labels(items: list[str] | None) -> dict[str, str]:
    """["team=vision", "stage:prod"] -> {"team": "vision", "stage": "prod"}: split at the first = or :
    (a key has neither); exit 2 on one without. The server checks the rest, naming the label."""
    labels = {}
    for item in items or []:
        cut = min((i for i in (item.find("="), item.find(":")) if i >= 0), default=-1)
        if cut <= 0:
            errors.print(f"[red]error:[/] --label takes KEY=VALUE, got {escape(item)!r}")
            raise typer.Exit(2)
        labels[item[:cut]] = item[cut + 1:]
    return labels


def labels_text(labels: dict[str, str] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (labels or {}).items())


def dataset_id(client, dataset: str, target: str | None) -> str:
    """An existing file is uploaded first; anything else is taken for a dataset id."""
    path = Path(dataset)
    if not path.is_file():
        return dataset
    uploaded = client.datasets.upload(path, target=target)
    console.print(f"uploaded {path.name} as [bold]{uploaded['id']}[/] ({uploaded['rows']} rows)")
    return uploaded["id"]


@app.command()
def submit(spec_file: Annotated[Path, typer.Argument(metavar="SPEC.json", help="The job spec")],
           dataset: Annotated[str | None, typer.Option(
               help="A dataset id, or a .csv/.npz file to upload first (overrides the spec's)")] = None,
           target: Annotated[str | None, typer.Option(
               help="CSV target column(s), with --dataset FILE")] = None,
           follow: Annotated[bool, typer.Option("--follow", "-f", help="Watch it train")] = False,
           dry_run: Annotated[bool, typer.Option("--dry-run", help="Check only: print the plan")] = False,
           name: Annotated[str | None, typer.Option(help="The job's name (overrides the file's)")] = None,
           label: LabelOption = None,
           url: Url = None, api_key: ApiKey = None):
    """Submits a job; with --follow, shows its progress live until it ends."""
    spec = read_spec(spec_file)
    # A file's own "name" and "labels" travel with it; the flags override the name, add labels.
    labels = {**(spec.get("labels") if isinstance(spec.get("labels"), dict) else {}), **parse_labels(label)} \
        if label else None
    with connect(url, api_key) as client, reported():
        ds = dataset_id(client, dataset, target) if dataset else None
        if dry_run:
            console.print_json(data=client.submit(spec, dataset=ds, name=name, labels=labels, dry_run=True))
            return
        job = client.submit(spec, dataset=ds, name=name, labels=labels)
        console.print(f"job [bold]{job['id']}[/]{' ' + escape(repr(job['name'])) if job.get('name') else ''} "
                      f"{job['status']} "
                      f"({job['parameter_count']:,} parameters, "
                      f"{job['progress']['total_steps']:,} steps)")
        for warning in job.get("warnings", []):
            console.print(f"[yellow]warning:[/] {escape(warning)}")
        if job.get("waiting_reason") and not follow:
            console.print(f"[yellow]{escape(job['waiting_reason'])}[/]")
        if follow:
            from app.cli.follow import follow_job

            raise typer.Exit(follow_job(client, job["id"]))


def fmt(value) -> str:
    """A value for a table cell; server text is escaped, never read as rich markup."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else escape(str(value))


@app.command()
def status(job_id: str,
           as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON")] = False,
           url: Url = None, api_key: ApiKey = None):
    """Shows a job: status, progress, latest metrics, error."""
    with connect(url, api_key) as client, reported():
        job = client.get(job_id)
    if as_json:
        console.print_json(data=job)
        return
    p = job["progress"]
    table = Table(show_header=False, box=None)
    rows = [("job", job["id"]), ("name", job.get("name")), ("labels", labels_text(job.get("labels")) or None),
            ("status", job["status"]), ("waiting", job.get("waiting_reason")),
            ("progress", f"epoch {p['epoch']}/{p['epochs']}, step {p['step']}/{p['total_steps']}"),
            ("attempts", job["attempts"]), ("device", job["device"]),
            ("created", job["created_at"]), ("started", job["started_at"]),
            ("finished", job["finished_at"]), ("error", job["error"])]
    rows += [(k, v) for k, v in (job["latest_metrics"] or {}).items() if k not in ("epoch", "step")]
    for name, value in rows:
        if value is not None:
            table.add_row(f"[bold]{name}[/]", fmt(value))
    console.print(table)


@app.command("list")
def list_jobs(status: Annotated[str | None, typer.Option(
                  help="queued, running, succeeded, failed, cancelled")] = None,
              label: Annotated[list[str] | None, typer.Option(
                  "--label", "-l", metavar="KEY=VALUE", help="Only jobs with this label; repeat: all of them")] = None,
              name: Annotated[str | None, typer.Option(help="Only jobs of this exact name")] = None,
              name_prefix: Annotated[str | None, typer.Option(help="Only jobs whose name starts so")] = None,
              limit: int = 20, url: Url = None, api_key: ApiKey = None):
    """Lists jobs, newest first."""
    with connect(url, api_key) as client, reported():
        page = client.jobs.list(status=status, label=parse_labels(label), name=name, name_prefix=name_prefix,
                                limit=limit)
    # An id is useless cut short: it never wraps, the other columns give way.
    table = Table(Column("job", no_wrap=True), "name", "status", "epoch", "loss", "val_loss", "labels",
                  box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for job in page["items"]:
        latest, p = job["latest_metrics"] or {}, job["progress"]
        table.add_row(job["id"], fmt(job.get("name")), job["status"], f"{p['epoch']}/{p['epochs']}",
                      fmt(latest.get("train_loss")), fmt(latest.get("val_loss")), fmt(labels_text(job.get("labels"))))
    console.print(table)
    console.print(f"{len(page['items'])} of {page['total']}")


@app.command()
def cancel(job_id: str, url: Url = None, api_key: ApiKey = None):
    """Asks the server to cancel a queued or running job."""
    from app.client import TrainyardError

    with connect(url, api_key) as client, reported():
        try:
            job = client.cancel(job_id)
        except TrainyardError as exc:
            if exc.status not in (404, 405):
                raise
            client.get(job_id)  # a missing job is reported as such
            errors.print(f"[red]error:[/] this server cannot cancel jobs: POST /v1/jobs/{job_id}/cancel "
                         f"answered {exc.status} {escape(str(exc.detail))}")
            raise typer.Exit(1)
    if job["status"] == "running":  # 202: it stops itself, at its next check
        # soft_wrap: a command to copy is never broken across lines.
        console.print(f"job [bold]{job_id}[/]: cancel requested; the worker stops it at its next check "
                      "(within ~1 s), keeping its metrics", soft_wrap=True)
        console.print(f"`trainyard follow {job_id}` shows the end", soft_wrap=True)
    else:
        console.print(f"job [bold]{job_id}[/] {job['status']}")


@app.command()
def delete(job_id: str, url: Url = None, api_key: ApiKey = None):
    """Deletes an ended job with its metrics, events and files (weights, checkpoint, ONNX)."""
    with connect(url, api_key) as client, reported():
        client.jobs.delete(job_id)
    console.print(f"deleted job [bold]{job_id}[/]")


@app.command()
def workers(include_offline: Annotated[bool, typer.Option(
                "--all", help="Also workers stopped or not heard from lately")] = False,
            url: Url = None, api_key: ApiKey = None):
    """Lists the workers: device, memory, and what each is running."""
    with connect(url, api_key) as client, reported():
        listing = client.workers(include_offline=include_offline)
    table = Table(Column("worker", no_wrap=True), "device", "memory", "status", "job",
                  box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for w in listing["items"]:
        memory = f"{w['memory_bytes'] / 2**30:.0f} GiB" if w["memory_bytes"] else ""
        job = w["running_job_id"] or ("busy" if w["busy"] else "idle")
        table.add_row(w["name"], fmt(w["device_name"]), memory, w["status"], job)
    console.print(table)
    online = listing["online"]
    console.print(f"online: {online['gpu']} GPU, {online['cpu']} CPU")
