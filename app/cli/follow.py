"""`trainyard follow`: a live progress bar driven by the job's event stream."""
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeRemainingColumn)
from rich.text import Text

from app.cli.base import ApiKey, Url, app, connect, console, reported
from app.client import Event


def metric_text(point: dict, names=("train_loss", "val_loss", "val_accuracy")) -> str:
    return "  ".join(f"{n} {point[n]:.4g}" for n in names if isinstance(point.get(n), (int, float)))


class TwoLineProgress(Progress):
    """The bar on one line, the latest loss and validation metrics on the next, so both
    fit an 80-column terminal."""

    metrics = Text("")

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        yield self.metrics


class FollowView:
    """Turns events into a progress bar (on a terminal) or plain lines (in a log)."""

    def __init__(self, out: Console, job: dict):
        self.out, self.live = out, out.is_terminal
        self.epochs = job["progress"]["epochs"]
        self.progress = TwoLineProgress(
            TextColumn("[bold]{task.description:<9}"), BarColumn(bar_width=20), MofNCompleteColumn(),
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            TextColumn("ETA"), TimeRemainingColumn(),
            console=out, disable=not self.live, transient=False)
        self.task = self.progress.add_task(job["status"], total=job["progress"]["total_steps"] or None,
                                           epoch=0, epochs=self.epochs)
        self.end: dict | None = None
        self.last_epoch: dict | None = None
        self.loss = self.val = ""

    def __enter__(self) -> "FollowView":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def say(self, text: str) -> None:
        self.out.print(text)  # while the bar is live, rich prints above it

    def update(self, event: Event) -> None:
        data, kind = event.data, event.event
        if kind == "status":
            self.on_status(data)
        elif kind == "step":
            self.progress.update(self.task, completed=data["step"], epoch=data["epoch"])
            self.show(loss=metric_text(data, ("train_loss",)).replace("train_loss", "loss"))
        elif kind == "epoch":
            self.last_epoch = data
            self.progress.update(self.task, completed=data["step"], epoch=data["epoch"])
            self.show(val=metric_text(data, ("val_loss", "val_accuracy")))
            if not self.live:
                self.say(f"epoch {data['epoch']}/{self.epochs}  {metric_text(data)}")
        elif kind == "end":
            self.end = data

    def show(self, loss: str | None = None, val: str | None = None) -> None:
        self.loss = self.loss if loss is None else loss
        self.val = self.val if val is None else val
        line = f"{self.loss}  {self.val}".strip()
        self.progress.metrics = Text(line, overflow="ellipsis", no_wrap=True)

    def on_status(self, data: dict) -> None:
        status = data["status"]
        self.progress.update(self.task, description=status)
        if status == "running" and data.get("attempt", 1) > 1:
            # A lost worker's attempt is trained again from the first step.
            self.progress.reset(self.task, description=status, epoch=0)
            self.show(loss="", val="")
            self.say(escape(f"attempt {data['attempt']} started on {data.get('worker', 'a worker')}"))
        elif status in ("queued", "retrying") and data.get("reason"):
            self.say(f"[yellow]{escape(data['reason'])}[/]")
        elif status == "running":
            self.say(escape(f"running on {data.get('worker', 'a worker')}"))


def follow_job(client, job_id: str) -> int:
    """Shows the job until it ends; returns the exit code: 0 succeeded, 1 otherwise."""
    job = client.get(job_id)
    if job.get("waiting_reason"):
        console.print(f"[yellow]{escape(job['waiting_reason'])}[/]")
    try:
        with FollowView(console, job) as view:
            for event in client.stream(job_id):
                view.update(event)
    except KeyboardInterrupt:
        console.print(f"stopped following; the job goes on (trainyard follow {job_id})")
        return 130
    end = view.end or {"status": client.get(job_id)["status"], "error": None}
    if end["status"] == "succeeded":
        summary = metric_text(view.last_epoch or {})
        console.print(f"[green]succeeded[/] {job_id}" + (f": {summary}" if summary else ""))
        return 0
    reason = f": {escape(end['error'])}" if end.get("error") else ""
    console.print(f"[red]{end['status']}[/] {job_id}{reason}")
    return 1


@app.command()
def follow(job_id: str, url: Url = None, api_key: ApiKey = None):
    """Watches a job live: progress, loss, validation metrics and ETA. Exit code 0 on success."""
    with connect(url, api_key) as client, reported():
        code = follow_job(client, job_id)
    raise typer.Exit(code)
