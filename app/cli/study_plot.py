"""`trainyard study plot`: per variant the mean learning curve with its min-max band (PNG), and its data as CSV."""
import csv
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from app.cli.base import ApiKey, Url, connect, console, errors, reported
from app.cli.results import pyplot
from app.cli.studies import study
from app.client import CURVE_COLUMNS, curve_rows

STDOUT = "-"
# More variants than this (a long search) make a legend taller than the plot: it is left out.
LEGEND_MAX = 20


def draw(curves: dict, *, title: str, log_y: bool):
    """The figure: per variant its mean line and a min-max band, and each member's curve (thin) when
    the curves carry them."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, c in enumerate(curves["variants"]):
        color = colors[i % len(colors)]
        # x is None at an epoch whose members' step or seconds are unknown: nothing to place it at.
        known = [(x, m, lo, hi) for x, m, lo, hi in zip(c["x"], c["mean"], c["min"], c["max"]) if x is not None]
        if not known:
            continue
        xs, means, lows, highs = zip(*known)
        ax.fill_between(xs, lows, highs, color=color, alpha=0.18, linewidth=0)
        ax.plot(xs, means, color=color, marker="o" if len(xs) <= 30 else None, markersize=3,
                label=f"{c['variant']} (n={max(c['n'])})")
        for m in c.get("members") or []:  # present when asked for (members=true)
            ax.plot(m["x"], m["y"], color=color, alpha=0.45, linewidth=0.8)
    ax.set(xlabel=curves["x"], ylabel=curves["metric"], yscale="log" if log_y else "linear")
    ax.set_title(title, fontsize="medium")
    if curves["x"] == "epoch":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if len(curves["variants"]) <= LEGEND_MAX:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def write_csv(rows: list[dict], target: str) -> None:
    """The plotted numbers, one row per variant and epoch; ``-`` is stdout."""
    out = sys.stdout if target == STDOUT else open(target, "w", newline="")
    try:
        writer = csv.DictWriter(out, fieldnames=CURVE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)  # a missing std or x (None) is an empty cell
    finally:
        if out is not sys.stdout:
            out.close()


@study.command("plot")
def plot(study_id: str,
         output: Annotated[str, typer.Option("-o", "--output", help="Image file (PNG), or - for stdout")] = "curves.png",
         metric: Annotated[str | None, typer.Option(help="An epoch metric (default: the objective's)")] = None,
         x: Annotated[Literal["epoch", "step", "seconds"], typer.Option(help="The x axis")] = "epoch",
         log_y: Annotated[bool, typer.Option("--log-y", help="Logarithmic y axis")] = False,
         members: Annotated[bool, typer.Option("--members", help="Also each member's own curve")] = False,
         csv_path: Annotated[str | None, typer.Option(
             "--csv", help="Also write the plotted data (variant, epoch, x, mean, std, min, max, n); - for stdout")] = None,
         url: Url = None, api_key: ApiKey = None):
    """Draws each variant's mean curve with its min-max band over the seeds (needs matplotlib: the `plot` extra)."""
    if output == STDOUT and csv_path == STDOUT:
        errors.print("[red]error:[/] -o - and --csv - cannot both write to stdout")
        raise typer.Exit(2)
    plt = pyplot()
    with connect(url, api_key) as client, reported():
        curves = client.studies.curves(study_id, metric=metric, x=x, members=members)
    rows = curve_rows(curves)
    if not rows:
        errors.print(f"[red]error:[/] study {study_id} has no {curves['metric']} values yet")
        raise typer.Exit(1)
    # Whatever goes to stdout is data: the messages then go to stderr.
    say = errors if STDOUT in (output, csv_path) else console
    fig = draw(curves, title=f"{study_id}\n{curves['metric']}: the mean over members, and their min-max band",
               log_y=log_y)
    fig.savefig(sys.stdout.buffer if output == STDOUT else Path(output), format="png", dpi=120)
    plt.close(fig)
    if output != STDOUT:
        say.print(f"wrote {output}")
    if csv_path is not None:
        write_csv(rows, csv_path)
        if csv_path != STDOUT:
            say.print(f"wrote {csv_path} ({len(rows)} rows)")
