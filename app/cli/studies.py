"""`trainyard study`: run, show, list, cancel and delete studies, and the leaderboard table they print."""
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Column, Table

from app.cli.base import ApiKey, Url, app, connect, console, reported
from app.cli.jobs import fmt, labels_text, parse_labels, read_spec

study = typer.Typer(help="Studies: many jobs (variants x seeds, a grid, a search) compared.",
                    no_args_is_help=True)
app.add_typer(study, name="study")

# The order member counts are shown in: what is done first, then what is under way, then the losses.
STATUS_ORDER = ("succeeded", "running", "queued", "held", "retrying", "pruned", "failed", "cancelled")


def counts_text(counts: dict[str, int]) -> str:
    """'4 succeeded, 2 running' in STATUS_ORDER (statuses it does not know come last)."""
    order = [s for s in STATUS_ORDER if s in counts] + sorted(set(counts) - set(STATUS_ORDER))
    return ", ".join(f"{counts[s]} {s}" for s in order if counts[s])


def stat_text(stat: dict) -> str:
    """'0.123 ± 0.004 (3)': mean ± sample std (n); the std is left out for one member."""
    if not stat["n"]:
        return ""
    spread = f" ± {stat['std']:.3g}" if stat["std"] is not None else ""
    return f"{stat['mean']:.4g}{spread} ({stat['n']})"


def target_text(to_target: dict) -> str:
    """'2/3 by epoch 4.5': how many reached the target, and the mean epoch they first did."""
    if not to_target["n"]:
        return ""  # no succeeded member yet: nothing to count
    head = f"{to_target['reached']}/{to_target['n']}"
    mean = to_target["epochs"]["mean"]
    return head if mean is None else f"{head} by epoch {mean:.3g}"


def board_table(board: dict, *, members: dict[str, dict[str, int]] | None = None) -> Table:
    """The leaderboard, one row per variant; ``members`` (variant -> status counts) overrides the
    board's counts with fresher ones, and adds the variants the board has not seen yet."""
    objective = board["objective"]
    target = objective.get("target")
    sign = "≤" if objective["mode"] == "min" else "≥"
    table = Table(Column("#", justify="right"), Column("variant", overflow="fold"),
                  Column(f"final {objective['metric']}", justify="right"), Column("best", justify="right"),
                  *([Column(f"reached {sign} {target:g}")] if target is not None else []),
                  Column("auc", justify="right"), "members", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    members = members or {}
    for row in board["rows"]:
        cells = [fmt(row["rank"]), escape(row["variant"]), stat_text(row["final"]), fmt(row["best"]["mean"])]
        if target is not None:
            cells.append(target_text(row["to_target"]) if row["to_target"] else "")
        cells += [fmt(row["auc"]["mean"]), counts_text(members.get(row["variant"], row["members"]))]
        table.add_row(*cells)
    for variant in sorted(set(members) - {row["variant"] for row in board["rows"]}):
        table.add_row("", escape(variant), "", "", *([""] if target is not None else []), "",
                      counts_text(members[variant]))
    return table


def describe(created: dict) -> str:
    """'study study_... running: 6 members, 2 at a time'."""
    unit = "trials" if created["kind"] == "search" else "members"
    at_once = f", {created['parallel']} at a time" if created.get("parallel") else ""
    return f"study [bold]{created['id']}[/] {created['status']}: {created['planned']} {unit}{at_once}"


@study.command("run")
def run(study_file: Annotated[Path, typer.Argument(metavar="STUDY.json", help="The study: base, variants, seeds, ...")],
        follow: Annotated[bool, typer.Option("--follow", "-f", help="Watch its leaderboard live")] = False,
        as_json: Annotated[bool, typer.Option(
            "--json", help="Print the study as JSON (with --follow: once it has ended)")] = False,
        url: Url = None, api_key: ApiKey = None):
    """Starts a study and prints its id; with --follow, shows its leaderboard live until it ends.

    With --follow the exit code is 0 when the study completed with a succeeded member, else 1;
    Ctrl-C stops following and leaves the study running.
    """
    body = read_spec(study_file, what="the study")
    with connect(url, api_key) as client, reported():
        created = client.studies.create(body)
        if as_json and not follow:
            console.print_json(data=created)
            return
        if not as_json:
            console.print(describe(created))
        if follow:
            from app.cli.study_follow import follow_study, wait_study

            raise typer.Exit(wait_study(client, created["id"]) if as_json else follow_study(client, created["id"]))


@study.command("show")
def show(study_id: str,
         as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON")] = False,
         url: Url = None, api_key: ApiKey = None):
    """Shows a study: status, member counts, its leaderboard and the summary line."""
    with connect(url, api_key) as client, reported():
        found = client.studies.get(study_id)
    if as_json:
        console.print_json(data=found)
        return
    objective = found["objective"]
    target = f", target {objective['target']:g}" if objective.get("target") is not None else ""
    facts = Table(show_header=False, box=None)
    for name, value in (("study", found["id"]), ("name", found["name"]),
                        ("labels", labels_text(found.get("labels")) or None), ("status", found["status"]),
                        ("kind", found["kind"]), ("members", f"{found['planned']} planned: {counts_text(found['counts'])}"),
                        ("objective", f"{objective['metric']} ({objective['mode']}){target}"),
                        ("created", found["created_at"]), ("finished", found["finished_at"])):
        if value is not None:
            facts.add_row(f"[bold]{name}[/]", fmt(value))
    console.print(facts)
    console.print(board_table(found["leaderboard"]))
    console.print(escape(found["leaderboard"]["summary"]))
    for m in found["members"]:
        if m["status"] == "failed" and m["error"]:
            console.print(f"[red]failed[/] {m['job_id']} ({escape(m['variant'])}, seed {m['seed']}): {escape(m['error'])}")


@study.command("list")
def list_studies(status: Annotated[str | None, typer.Option(help="running, completed, cancelled")] = None,
                 label: Annotated[list[str] | None, typer.Option(
                     "--label", "-l", metavar="KEY=VALUE", help="Only studies with this label; repeat: all")] = None,
                 name: Annotated[str | None, typer.Option(help="Only studies of this exact name")] = None,
                 limit: int = 20, url: Url = None, api_key: ApiKey = None):
    """Lists studies, newest first."""
    with connect(url, api_key) as client, reported():
        page = client.studies.list(status=status, label=parse_labels(label), name=name, limit=limit)
    table = Table(Column("study", no_wrap=True), "name", "status", "kind", "members",
                  box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for s in page["items"]:
        table.add_row(s["id"], fmt(s["name"]), s["status"], s["kind"],
                      f"{s['planned']} planned: {counts_text(s['counts'])}")
    console.print(table)
    console.print(f"{len(page['items'])} of {page['total']}")


@study.command("cancel")
def cancel(study_id: str, url: Url = None, api_key: ApiKey = None):
    """Cancels a running study: its waiting members at once, its running ones at their next step."""
    with connect(url, api_key) as client, reported():
        cancelled = client.studies.cancel(study_id)
    console.print(f"study [bold]{cancelled['id']}[/] {cancelled['status']}: {counts_text(cancelled['counts'])}")


@study.command("delete")
def delete(study_id: str, url: Url = None, api_key: ApiKey = None):
    """Deletes an ended study with its member jobs, their histories and their weights."""
    with connect(url, api_key) as client, reported():
        client.studies.delete(study_id)
    console.print(f"deleted study [bold]{study_id}[/]")
