"""bench/convergence.py still runs (one problem, 3 epochs, 1 seed; the committed docs/convergence.md
comes from a full run) and writes a report whose tables name every optimizer and show the request
it ran. Nothing here is timed."""
import json
import re

from bench.convergence import OPTIMIZERS, study_request
from tests.test_bench_api import run_bench
from tests.test_bench_optimizer_study import table_after


def test_the_convergence_bench_writes_its_tables_figure_and_requests(tmp_path):
    run_bench("bench/convergence.py", "--problems", "sine", "--epochs", "3", "--seeds", "1", "--out", str(tmp_path))
    text = (tmp_path / "convergence.md").read_text()
    assert (tmp_path / "convergence" / "sine.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = text.splitlines()
    board = table_after(lines, "| rank |")
    assert sorted(row[1] for row in board) == sorted(label for label, _ in OPTIMIZERS)
    assert [int(row[0]) for row in board] == list(range(1, len(OPTIMIZERS) + 1))
    costs = table_after(lines, "| variant | s per step")
    assert [row[0] for row in costs] == [label for label, _ in OPTIMIZERS]
    assert all(row[2] == "3" for row in costs)  # every member ran its 3 epochs, one step each
    request = json.loads(re.search(r"```json\n(.*?)\n```", text, re.S).group(1))
    assert request == study_request("sine", request["base"]["dataset"], epochs=3, seeds=[1])
