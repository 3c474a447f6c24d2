"""`trainyard predict`: a trained job's predictions for the rows of a CSV or JSON file."""
import csv
import io
import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from app.cli.base import ApiKey, Url, app, connect, console, errors, reported
from app.cli.jobs import fmt


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_csv(text: str, feature_names: list[str] | None) -> list[list[float]]:
    """The rows of a CSV of features. A header row (any cell not a number) that names the job's
    features picks those columns in the training order, so the training file itself works (its
    target column left out); else every column is a feature."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if not rows:
        raise ValueError("no rows")
    header = None if all(is_number(c) for c in rows[0]) else [c.strip() for c in rows[0]]
    body = rows[1:] if header else rows
    if not body:
        raise ValueError("no rows of numbers after the header")
    picked = range(len(rows[0]))
    if header and feature_names and set(feature_names) <= set(header):
        picked = [header.index(n) for n in feature_names]
    try:
        return [[float(r[i]) for i in picked] for r in body]
    except (ValueError, IndexError) as exc:
        raise ValueError(f"every cell must be a number ({exc})") from None


def read_inputs(path: Path, feature_names: list[str] | None) -> list:
    """A .json file holds the rows ([[...], ...]) or {"inputs": rows}; anything else is read as CSV."""
    text = path.read_text()
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        return data["inputs"] if isinstance(data, dict) and "inputs" in data else data
    return read_csv(text, feature_names)


@app.command()
def predict(job_id: str,
            input: Annotated[Path, typer.Option(
                "--input", "-i", exists=True, dir_okay=False,
                help="Rows of raw features: .csv (a header naming the job's features picks them) or .json")],
            as_json: Annotated[bool, typer.Option("--json", help="Print the server's JSON")] = False,
            url: Url = None, api_key: ApiKey = None):
    """Prints a trained job's outputs for each row (labels and probabilities for a classifier)."""
    with connect(url, api_key) as client, reported():
        job = client.get(job_id)
        names = client.datasets.get(job["dataset_id"]).get("feature_names") if job.get("dataset_id") else None
        try:
            inputs = read_inputs(input, names)
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            errors.print(f"[red]error:[/] cannot read --input {input}: {exc}")
            raise typer.Exit(2)
        result = client.predict(job_id, inputs)
    if as_json:
        console.print_json(data=result)
        return
    labels, probabilities = result.get("labels"), result.get("probabilities")
    table = Table("row", *(("label", "probability") if labels is not None else ("output",)),
                  box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for i, output in enumerate(result["outputs"]):
        if labels is None:
            table.add_row(str(i), fmt(output if not isinstance(output, list) or len(output) != 1 else output[0]))
            continue
        p = probabilities[i]
        # A multi-class row: the chosen class's probability; bce: a probability per output.
        top = max(p) if isinstance(p, list) and labels and not isinstance(labels[i], list) else p
        table.add_row(str(i), fmt(labels[i]), fmt(top))
    console.print(table)
