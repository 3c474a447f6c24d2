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
           name: str | None = None, url: Url = None, api_key: ApiKey = None):
    """Uploads a dataset and prints its id."""
    with connect(url, api_key) as client, reported():
        ds = client.datasets.upload(file, target=target, name=name)
    classes = f", classes {ds['classes']}" if ds.get("classes") else ""
    shapes = f"features {ds['feature_shape']}, targets {ds['target_shape'] or 'scalar'}"
    console.print(f"dataset [bold]{ds['id']}[/]: " + escape(f"{ds['rows']} rows, {shapes}{classes}"))


@datasets.command("list")
def list_datasets(limit: int = 50, offset: int = 0, url: Url = None, api_key: ApiKey = None):
    """Lists your uploaded datasets (and the builtins your jobs used), newest first."""
    with connect(url, api_key) as client, reported():
        page = client.datasets.list(limit=limit, offset=offset)
    # An id is useless cut short: it never wraps, the other columns give way.
    table = Table(Column("dataset", no_wrap=True), "name", "format", "rows", "features", "targets",
                  box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for ds in page["items"]:
        targets = ", ".join(map(str, ds["classes"])) if ds.get("classes") else ds["target_kind"]
        table.add_row(ds["id"], fmt(ds["name"]), ds["source_format"], f"{ds['rows']:,}",
                      fmt(ds["feature_shape"]), fmt(targets))
    console.print(table)
    console.print(f"{len(page['items'])} of {page['total']}")
