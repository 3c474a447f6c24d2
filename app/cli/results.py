"""What a job produced: metrics (table or CSV), weights, and a loss-curve picture."""
import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from app.cli.base import ApiKey, Url, app, connect, console, errors, reported
from app.cli.jobs import fmt

# The table's columns: what a reader compares across epochs. The rest (per-layer norms,
# lr_last, samples_per_second, ...) is in --csv and GET /v1/jobs/{id}/metrics.
EPOCH_COLUMNS = ("epoch", "train_loss", "val_loss", "val_accuracy", "lr", "epoch_seconds")
STEP_COLUMNS = ("step", "epoch", "train_loss", "lr")
# A table longer than this is cut by the server (max_points) unless --all.
TABLE_POINTS = 40


def columns(points: list[dict]) -> list[str]:
    """Every field any point has, in first-seen order (new metrics appear by themselves)."""
    return list(dict.fromkeys(k for p in points for k in p))


def csv_cell(value):
    """A CSV cell: a per-layer dict (grad_norms, param_norms) as JSON, not a Python repr."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


@app.command()
def metrics(job_id: str,
            as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout: every point and field")] = False,
            steps: Annotated[bool, typer.Option("--steps", help="Logged steps, not epochs")] = False,
            every: Annotated[bool, typer.Option(
                "--all", help=f"Every point in the table (else at most {TABLE_POINTS}, spikes kept)")] = False,
            url: Url = None, api_key: ApiKey = None):
    """Prints a job's loss history: one row per epoch (or per logged step)."""
    kind = "step" if steps else "epoch"
    # CSV is data: never cut. A table is read: a long one is cut by the server.
    cut = None if as_csv or every else TABLE_POINTS
    with connect(url, api_key) as client, reported():
        points = client.metrics(job_id, kind=kind, max_points=cut)
        epochs = client.get(job_id)["progress"]["epoch"] if cut and not steps else None
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns(points), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in p.items()} for p in points)
        return
    # Only the columns some point has: a job without validation shows no empty val columns.
    present = {k for p in points for k, v in p.items() if v is not None}
    names = [n for n in (STEP_COLUMNS if steps else EPOCH_COLUMNS) if n in present]
    table = Table(*names, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for p in points:
        table.add_row(*(fmt(p.get(n)) for n in names))
    console.print(table)
    # The server gives every point when they fit: say when it did not.
    if steps and cut and points:
        console.print(f"at most {cut} of the logged steps (each stretch's first, lowest and highest "
                      "train_loss); --all for every one, --csv for every field")
    elif epochs and len(points) < epochs:
        console.print(f"{len(points)} of {epochs:,} epochs (each stretch's first, lowest and highest "
                      "train_loss); --all for every one, --csv for every field")


# Each format's file extension: the default output name is JOB_ID.EXT.
DOWNLOAD_EXTENSIONS = {"safetensors": "safetensors", "onnx": "onnx", "onnx-int8": "int8.onnx"}
# What an int8 export's headers report, in the order printed.
INT8_REPORT = (("x-trainyard-int8-rows", "measured on"), ("x-trainyard-accuracy-fp32", "accuracy fp32"),
               ("x-trainyard-accuracy-int8", "accuracy int8"), ("x-trainyard-mse-fp32", "mse fp32"),
               ("x-trainyard-mse-int8", "mse int8"), ("x-trainyard-mse-change", "mse change"),
               ("x-trainyard-int8-max-abs-diff", "max abs difference from fp32"),
               ("x-trainyard-quantized-nodes", "quantized nodes"), ("x-trainyard-float-nodes", "left float"),
               ("x-trainyard-size-ratio", "size vs fp32"))


@app.command()
def download(job_id: str,
             output: Annotated[Path | None, typer.Option(
                 "-o", "--output", help="Default: JOB_ID.EXT")] = None,
             format: Annotated[str, typer.Option(help="safetensors, onnx or onnx-int8")] = "safetensors",
             url: Url = None, api_key: ApiKey = None):
    """Downloads the trained weights (safetensors) or the model as ONNX (fp32, or int8-quantized)."""
    if format not in DOWNLOAD_EXTENSIONS:
        errors.print("[red]error:[/] --format is safetensors, onnx or onnx-int8")
        raise typer.Exit(2)
    with connect(url, api_key) as client, reported():
        response = client.request("GET", f"/v1/jobs/{job_id}/weights", params={"format": format})
    path = output or Path(f"{job_id}.{DOWNLOAD_EXTENSIONS[format]}")
    path.write_bytes(response.content)
    console.print(f"wrote {path} ({len(response.content):,} bytes)")
    if "x-trainyard-max-abs-diff" in response.headers:
        console.print(f"checked against PyTorch: max abs difference "
                      f"{response.headers['x-trainyard-max-abs-diff']}")
    for header, what in INT8_REPORT:
        if header in response.headers:
            console.print(f"{what}: {response.headers[header]}")


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


def curves(points: list[dict], metric: str) -> tuple[list, list]:
    """(epochs, values) of ``metric`` where a point has it."""
    xy = [(p["epoch"], p[metric]) for p in points if p.get(metric) is not None]
    return (list(map(list, zip(*xy))) if xy else ([], []))


@app.command()
def plot(job_ids: Annotated[list[str], typer.Argument(metavar="JOB_ID...", help="One job or several")],
         output: Annotated[Path, typer.Option(
             "-o", "--output", "--out", help="Image file, e.g. curve.png")] = Path("curve.png"),
         metric: Annotated[str | None, typer.Option(help=(
             "An epoch metric (val_loss, val_accuracy, lr, ...). Default: one job's train and "
             "validation loss; several jobs' val_loss"))] = None,
         log: Annotated[bool, typer.Option("--log", help="Logarithmic y axis")] = False,
         url: Url = None, api_key: ApiKey = None):
    """Draws curves against epoch: one job's train and validation loss, or a metric of several jobs.

    Needs matplotlib (the `plot` extra)."""
    plt = pyplot()
    # Up to a few thousand points per job: what a 7-inch chart can show, spikes kept.
    with connect(url, api_key) as client, reported():
        histories = {job_id: client.metrics(job_id, max_points=2000) for job_id in dict.fromkeys(job_ids)}
    if len(histories) == 1 and metric is None:
        job_id, points = next(iter(histories.items()))
        lines = [(label, *curves(points, name)) for name, label in (("train_loss", "train"),
                                                                    ("val_loss", "validation"))]
        title, ylabel = job_id, "loss"
    else:
        metric = metric or "val_loss"
        lines = [(job_id, *curves(points, metric)) for job_id, points in histories.items()]
        title, ylabel = f"{metric} of {len(histories)} jobs", metric
    for label, xs, _ in lines:
        if not xs and label in histories:
            errors.print(f"[yellow]warning:[/] job {label} has no {metric} values yet: left out")
    lines = [line for line in lines if line[1]]
    if not lines:
        errors.print(f"[red]error:[/] no {metric or 'loss'} values to plot yet")
        raise typer.Exit(1)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, xs, ys in lines:
        ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, label=label)
    ax.set(xlabel="epoch", ylabel=ylabel, yscale="log" if log else "linear")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    console.print(f"wrote {output}")
