"""What a job produced: metrics (table or CSV), weights, and a loss-curve picture."""
import csv
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from app.cli.base import ApiKey, Url, app, connect, console, errors, reported
from app.cli.jobs import fmt


def columns(points: list[dict]) -> list[str]:
    """Every field any point has, in first-seen order (new metrics appear by themselves)."""
    return list(dict.fromkeys(k for p in points for k in p))


@app.command()
def metrics(job_id: str,
            as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout")] = False,
            steps: Annotated[bool, typer.Option("--steps", help="Logged steps, not epochs")] = False,
            url: Url = None, api_key: ApiKey = None):
    """Prints a job's loss history: one row per epoch (or per logged step)."""
    with connect(url, api_key) as client, reported():
        points = client.metrics(job_id, kind="step" if steps else "epoch")
    names = columns(points)
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(points)
        return
    table = Table(*names)
    for p in points:
        table.add_row(*(fmt(p.get(n)) for n in names))
    console.print(table)


@app.command()
def download(job_id: str,
             output: Annotated[Path | None, typer.Option(
                 "-o", "--output", help="Default: JOB_ID.EXT")] = None,
             format: Annotated[str, typer.Option(help="safetensors or onnx")] = "safetensors",
             url: Url = None, api_key: ApiKey = None):
    """Downloads the trained weights (safetensors) or the model as ONNX."""
    if format not in ("safetensors", "onnx"):
        errors.print("[red]error:[/] --format is safetensors or onnx")
        raise typer.Exit(2)
    with connect(url, api_key) as client, reported():
        response = client.request("GET", f"/v1/jobs/{job_id}/weights", params={"format": format})
    path = output or Path(f"{job_id}.{format}")
    path.write_bytes(response.content)
    console.print(f"wrote {path} ({len(response.content):,} bytes)")
    if "x-trainyard-max-abs-diff" in response.headers:
        console.print(f"checked against PyTorch: max abs difference "
                      f"{response.headers['x-trainyard-max-abs-diff']}")


def pyplot():
    """matplotlib's pyplot drawing to files, or exit 2 saying how to install it (an optional extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # a file, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        errors.print("[red]error:[/] plot needs matplotlib: pip install 'trainyard\\[plot]'")
        raise typer.Exit(2)
    return plt


@app.command()
def plot(job_id: str,
         output: Annotated[Path, typer.Option(
             "-o", "--output", help="Image file, e.g. curve.png")] = Path("curve.png"),
         log: Annotated[bool, typer.Option("--log", help="Logarithmic loss axis")] = False,
         url: Url = None, api_key: ApiKey = None):
    """Draws train and validation loss against epoch (needs matplotlib: the `plot` extra)."""
    plt = pyplot()
    with connect(url, api_key) as client, reported():
        points = client.metrics(job_id)
    if not points:
        errors.print(f"[red]error:[/] job {job_id} has no epoch metrics yet")
        raise typer.Exit(1)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, label in (("train_loss", "train"), ("val_loss", "validation")):
        xy = [(p["epoch"], p[name]) for p in points if p.get(name) is not None]
        if xy:
            ax.plot(*zip(*xy), marker="o" if len(xy) <= 30 else None, label=label)
    ax.set(xlabel="epoch", ylabel="loss", title=f"{job_id}", yscale="log" if log else "linear")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    console.print(f"wrote {output}")
