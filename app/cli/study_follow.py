"""`trainyard study run --follow`: a live leaderboard driven by the study's event stream."""
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from app.cli.base import console
from app.cli.studies import board_table, counts_text
from app.client import TERMINAL, Event


class StudyView:
    """Turns a study's events into a leaderboard redrawn in place (on a terminal), or into one
    line per member that ends and the table once at the end (in a log)."""

    def __init__(self, out: Console, study: dict):
        self.out, self.id, self.planned = out, study["id"], study["planned"]
        self.status, self.board = study["status"], study["leaderboard"]
        # job id -> (variant, status): fresher than the board, which is redrawn only when a member ends.
        self.members = {m["job_id"]: (m["variant"], m["status"]) for m in study["members"]}
        self.end: dict | None = None
        self.live = Live(self.render(), console=out, auto_refresh=False) if out.is_terminal else None

    def __enter__(self) -> "StudyView":
        if self.live:
            self.live.start(refresh=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.live.stop()  # the last frame stays on the screen
        else:
            self.out.print(self.render())

    def counts(self) -> dict[str, dict[str, int]]:
        """variant -> status -> members, from the latest status of each member."""
        by_variant: dict[str, dict[str, int]] = {}
        for variant, status in self.members.values():
            counts = by_variant.setdefault(variant, {})
            counts[status] = counts.get(status, 0) + 1
        return by_variant

    def render(self) -> Group:
        overall: dict[str, int] = {}
        for _, status in self.members.values():
            overall[status] = overall.get(status, 0) + 1
        ended = sum(n for status, n in overall.items() if status in TERMINAL)
        head = Text.from_markup(f"study [bold]{self.id}[/] {self.status}: {ended}/{self.planned} ended "
                                f"({counts_text(overall)})")
        return Group(head, board_table(self.board, members=self.counts()), Text(self.board["summary"]))

    def update(self, event: Event) -> None:
        data, kind = event.data, event.event
        if kind == "leaderboard":
            self.board = data
        elif kind == "member":
            self.on_member(data)
        elif kind == "status":
            self.status = data["status"]
        elif kind == "end":
            self.end = data
            self.status = data.get("status") or self.status
            self.board = data.get("leaderboard") or self.board
        if self.live:
            self.live.update(self.render(), refresh=True)

    def on_member(self, data: dict) -> None:
        variant, status = data.get("variant") or "?", data["status"]
        self.members[data["job_id"]] = (variant, status)
        # A finish says why in "error", the other moves in "reason" (app/jobs/lifecycle.py).
        why = data.get("error") or data.get("reason")
        reason = f": {escape(why)}" if why else ""
        # Printed above the live table on a terminal; the story of the run in a log.
        if status in ("failed", "pruned") or (status in TERMINAL and not self.live):
            self.out.print(f"{status} {data['job_id']} ({escape(variant)}){reason}")


def succeeded(board: dict) -> tuple[int, int]:
    """(succeeded members, all members) over the board's rows."""
    rows = board["rows"]
    return sum(r["members"].get("succeeded", 0) for r in rows), sum(sum(r["members"].values()) for r in rows)


def exit_code(status: str | None, board: dict | None) -> int:
    """0 when the study completed with at least one succeeded member, else 1."""
    return 0 if status == "completed" and board is not None and succeeded(board)[0] else 1


def outcome(study_id: str, status: str | None, board: dict | None) -> int:
    """Says how the study ended; returns its exit code."""
    if status is None or board is None:
        console.print(f"[red]gone[/] {study_id}: the study no longer exists")
        return 1
    done, members = succeeded(board)
    code = exit_code(status, board)
    why = "no member succeeded" if status == "completed" and not done else f"{done} of {members} members succeeded"
    console.print(f"[{'green' if code == 0 else 'red'}]{status}[/] {study_id}: {why}")
    return code


def stopped(study_id: str) -> int:
    console.print(f"stopped following; the study goes on (trainyard study show {study_id}; "
                  f"trainyard study cancel {study_id} stops it)")
    return 130


def follow_study(client, study_id: str) -> int:
    """Shows the study's leaderboard live until it ends; returns the exit code (see outcome)."""
    study = client.studies.get(study_id)
    try:
        with StudyView(console, study) as view:
            for event in client.studies.stream(study_id):
                view.update(event)
    except KeyboardInterrupt:
        return stopped(study_id)
    # The stream yields its end event last, or raises: view.end is set here.
    return outcome(study_id, view.end.get("status"), view.end.get("leaderboard"))


def wait_study(client, study_id: str) -> int:
    """Waits for the study to end and prints it as JSON; the exit code as follow_study's."""
    try:
        ended = client.studies.wait(study_id)
    except KeyboardInterrupt:
        return stopped(study_id)
    console.print_json(data=ended)
    return exit_code(ended["status"], ended["leaderboard"])
