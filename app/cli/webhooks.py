"""`trainyard webhooks create|list|delete|deliveries`: the tenant's webhooks over the API."""
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Column, Table

from app.cli.base import ApiKey, Url, app, connect, console, reported
from app.cli.jobs import fmt

webhooks = typer.Typer(help="Webhooks: job and study events sent to your URL, signed (Standard Webhooks).",
                       no_args_is_help=True)
app.add_typer(webhooks, name="webhooks")


@webhooks.command("create")
def create(url: Annotated[str, typer.Argument(help="Where to send events: an http(s) URL on a public address")],
           event: Annotated[list[str], typer.Option(
               "--event", "-e", help="An event type to send (repeatable): job.succeeded, job.failed, "
                                     "job.cancelled, study.completed, ...")],
           secret: Annotated[str | None, typer.Option(
               help="The signing secret (whsec_ + base64); default: one is generated")] = None,
           url_: Url = None, api_key: ApiKey = None):
    """Adds a webhook and prints its id and signing secret (shown this once)."""
    with connect(url_, api_key) as client, reported():
        hook = client.webhooks.create(url, event, secret=secret)
    console.print(f"webhook [bold]{hook['id']}[/]: " + escape(f"{', '.join(hook['events'])} -> {hook['url']}"))
    console.print(f"secret (shown once; verify deliveries with it): {hook['secret']}", highlight=False)


@webhooks.command("list")
def list_webhooks(limit: int = 50, offset: int = 0, url: Url = None, api_key: ApiKey = None):
    """Lists your webhooks, newest first."""
    with connect(url, api_key) as client, reported():
        page = client.webhooks.list(limit=limit, offset=offset)
    table = Table(Column("webhook", no_wrap=True), "url", "events", Column("created", no_wrap=True),
                  box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for hook in page["items"]:
        table.add_row(hook["id"], escape(hook["url"]), escape(", ".join(hook["events"])), fmt(hook["created_at"]))
    console.print(table)
    console.print(f"{len(page['items'])} of {page['total']}")


@webhooks.command("delete")
def delete(webhook_id: Annotated[str, typer.Argument(help="The webhook's id (wh_...)")],
           url: Url = None, api_key: ApiKey = None):
    """Deletes a webhook; its pending deliveries are not sent."""
    with connect(url, api_key) as client, reported():
        client.webhooks.delete(webhook_id)
    console.print(f"deleted {webhook_id}")


@webhooks.command("deliveries")
def deliveries(webhook_id: Annotated[str, typer.Argument(help="The webhook's id (wh_...)")],
               status: Annotated[str | None, typer.Option(help="Only pending, delivered or failed ones")] = None,
               limit: int = 50, offset: int = 0, url: Url = None, api_key: ApiKey = None):
    """Lists what was sent to a webhook, newest first: status, attempts, last answer, next try."""
    with connect(url, api_key) as client, reported():
        page = client.webhooks.deliveries(webhook_id, status=status, limit=limit, offset=offset)
    table = Table(Column("delivery", no_wrap=True), Column("event", no_wrap=True), Column("status", no_wrap=True),
                  Column("attempts", justify="right"), "last answer", Column("next try", no_wrap=True),
                  box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for d in page["items"]:
        answer = str(d["last_status_code"]) if d["last_status_code"] else (d["last_error"] or "-")
        table.add_row(d["id"], d["event_type"], d["status"], str(d["attempts"]), escape(answer),
                      fmt(d["next_attempt_at"]))
    console.print(table)
    console.print(f"{len(page['items'])} of {page['total']}")
