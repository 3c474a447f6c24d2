"""Datasets from the command line."""
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from app.cli.base import ApiKey, Url, app, connect, console, reported

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
