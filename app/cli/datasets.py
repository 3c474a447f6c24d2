"""Datasets from the command line."""
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Column, Table

from app.cli.base import ApiKey, Url, app, connect, console, reported
from app.cli.jobs import fmt

datasets = typer.Typer(help="Datasets.", no_args_is_help=True)
app.add_typer(datasets, name="datasets")


@datasets.command("upload")
def upload(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".csv or .npz")],
           target: Annotated[str | None, typer.Option(
               help="CSV column(s) to predict, comma-separated")] = None,
           name: str | None = None,
           resumable: Annotated[bool, typer.Option(
               "--resumable", help="Send it in parts even under 64 MiB (larger files always are)")] = False,
           retries: Annotated[int, typer.Option(min=0, help="Tries more of a failed part, with backoff")] = 5,
           url: Url = None, api_key: ApiKey = None):
    """Uploads a dataset and prints its id. Over 64 MiB it goes in parts with a progress bar (on
    stderr); run the same command again after an interruption and only the missing parts are sent."""
    with connect(url, api_key) as client, reported():
        ds = client.datasets.upload(file, target=target, name=name, resumable=resumable or None,
                                    progress=True, retries=retries)
    classes = f", classes {ds['classes']}" if ds.get("classes") else ""
    shapes = f"features {ds['feature_shape']}, targets {ds['target_shape'] or 'scalar'}"
    console.print(f"dataset [bold]{ds['id']}[/]: " + escape(f"{ds['rows']} rows, {shapes}{classes}"))


@datasets.command("list")
def list_datasets(limit: int = 50, offset: int = 0, url: Url = None, api_key: ApiKey = None):
    """Lists your uploaded datasets (and the builtins your jobs used), newest first."""
    with connect(url, api_key) as client, reported():
        page = client.datasets.list(limit=limit, offset=offset)
    # An id is useless cut short: it never wraps, the other columns give way.
    # The name gives way; the rest is short and never wraps.
    table = Table(Column("dataset", no_wrap=True), "name", Column("rows", no_wrap=True, justify="right"),
                  Column("features", no_wrap=True), Column("targets", no_wrap=True),
                  box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for ds in page["items"]:
        # Classes by count: their names can be long and many (`datasets upload` prints them).
        targets = (f"{len(ds['classes'])} classes" if ds.get("classes")
                   else f"{ds['target_kind']} {ds['target_shape'] or ''}".strip())
        table.add_row(ds["id"], fmt(ds["name"]), f"{ds['rows']:,}",
                      fmt(ds["feature_shape"]), fmt(targets))
    console.print(table)
    console.print(f"{len(page['items'])} of {page['total']}")
