"""docs/architecture.md draws app/jobs/lifecycle.py's table: the state diagram, who may do what.

On a mismatch the failure prints what the page should hold, ready to paste.
"""
import re
from pathlib import Path

from app.jobs.lifecycle import TERMINAL, TRANSITIONS, JobStatus

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _order(statuses) -> list[JobStatus]:
    return [s for s in JobStatus if s in statuses]


def state_diagram() -> str:
    """The mermaid stateDiagram-v2 block of the transition table, one arrow per (from, to) of each row."""
    lines = ["stateDiagram-v2"]
    for t in TRANSITIONS:
        label = f"{t.name} ({t.actor})" + (f", {t.when}" if t.when else "")
        for source in _order(t.sources) or ["[*]"]:
            lines += [f"    {source} --> {target}: {label}" for target in _order(t.targets)]
    lines += [f"    {status} --> [*]" for status in _order(TERMINAL)]
    return "\n".join(lines)


def who_may_do_what() -> str:
    """The markdown table of the transitions: function, who, from, to, and when."""
    rows = ["| transition | made by | from | to | when |", "| --- | --- | --- | --- | --- |"]
    for t in TRANSITIONS:
        sources = ", ".join(_order(t.sources)) or "(new job)"
        rows.append(f"| `lifecycle.{t.name}` | {t.actor} | {sources} | {', '.join(_order(t.targets))} "
                    f"| {t.when or '-'} |")
    return "\n".join(rows)


def test_the_page_draws_the_transition_table():
    text = DOC.read_text()
    blocks = re.findall(r"```mermaid\n(.*?)\n```", text, re.S)
    assert blocks == [state_diagram()], \
        f"the page's mermaid block should be:\n```mermaid\n{state_diagram()}\n```"
    assert who_may_do_what() in text, f"the page's table should be:\n{who_may_do_what()}"
