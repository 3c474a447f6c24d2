"""bench/optimizer_study.py still runs (2 epochs, 2 seeds; the committed docs/studies/optimizers.md comes
from a full run) and writes a report whose tables agree with each other and with the request it
shows; the per-seed table's ranks are checked against a hand-made study. Nothing here is timed."""
import json
import re

import numpy as np

from bench._study_report import per_seed_table, readings
from bench.optimizer_study import OPTIMIZERS, study_request
from tests.test_bench_api import run_bench


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table_after(lines: list[str], header_start: str) -> list[list[str]]:
    """The rows of the markdown table whose header line starts with ``header_start``."""
    i = next(k for k, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            return rows
        rows.append(cells(line))
    return rows


def test_the_optimizer_study_writes_its_leaderboard_figure_and_request(tmp_path):
    run_bench("bench/optimizer_study.py", "--epochs", "2", "--seeds", "2", "--out", str(tmp_path))
    text = (tmp_path / "optimizers.md").read_text()
    assert (tmp_path / "optimizers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = text.splitlines()

    # The request shown is the one this script builds, so the command and JSON reproduce the run.
    request = json.loads(re.search(r"```json\n(.*?)\n```", text, re.S).group(1))
    assert request == study_request(epochs=2, seeds=[1, 2], target=request["objective"]["target"], parallel=1)
    assert "--epochs 2 --seeds 2" in text

    board = table_after(lines, "| rank |")
    assert sorted(r[1] for r in board) == sorted(label for label, _ in OPTIMIZERS)
    assert [r[0] for r in board] == [str(i) for i in range(1, 8)]
    per_seed = {r[0]: r for r in table_after(lines, "| variant | seed 1")}
    for rank, variant, _, final, *_ in board:
        # The leaderboard's mean final is the mean of the two seeds' last values (3 digits each).
        values = [float(c.split(" ")[0]) for c in per_seed[variant][1:3]]
        assert np.isclose(float(final.split(" ")[0]), np.mean(values), rtol=0.01), (variant, final, values)
    # Within each seed the ranks are a permutation of 1..7.
    for column in (1, 2):
        ranks = sorted(int(re.search(r"\((\d+)\)", r[column]).group(1)) for r in per_seed.values())
        assert ranks == list(range(1, 8))


def test_the_per_seed_table_ranks_each_seed_by_its_last_value():
    def member(seed, ys):
        return {"job_id": f"j{seed}", "seed": seed, "status": "succeeded", "x": list(range(len(ys))), "y": ys}

    curves = {"variants": [
        {"variant": "a", "members": [member(1, [0.9, 0.5]), member(2, [0.8, 0.1])]},
        {"variant": "b", "members": [member(1, [0.9, 0.2]), member(2, [0.7, 0.3])]},
        {"variant": "c", "members": [member(1, [0.6, 0.4])]},  # seed 2 missing
    ]}
    lines = per_seed_table(curves)
    assert lines[0] == "| variant | seed 1 | seed 2 | mean rank |"
    # seed 1: b 0.2 < c 0.4 < a 0.5; seed 2: a 0.1 < b 0.3. Mean ranks: b 1.5, a 2, c 2.
    assert lines[2:] == ["| b | 0.2 (1) | 0.3 (2) | 1.5 |", "| a | 0.5 (3) | 0.1 (1) | 2 |",
                         "| c | 0.4 (2) | - | 2 |"]


def test_the_readings_name_who_missed_the_target_who_reached_it_first_and_who_turned_back_up():
    def stat(mean, n=3):
        return {"mean": mean, "std": None, "min": mean, "max": mean, "n": n}

    def row(variant, final, best, reached, epochs):
        return {"variant": variant, "final": stat(final), "best": stat(best),
                "to_target": {"reached": reached, "n": 3, "epochs": stat(epochs, reached), "seconds": stat(1.0)}}

    study = {"leaderboard": {"objective": {"metric": "val_loss", "mode": "min", "target": 0.1}, "rows": [
        row("a", 0.08, 0.075, 2, 9.0), row("b", 0.09, 0.05, 1, 4.0), row("c", 0.3, 0.29, 0, None)]}}
    assert readings(study) == [
        "- never reached the target (0.1) on any seed: c",
        "- reached it soonest: b, at epoch 4 on average over 1 of 3 seeds",
        # 0.09 / 0.05 = 1.8 > 1.2; a's 0.08 / 0.075 = 1.07 is not.
        "- b ended 1.8x above its best (final 0.09, best 0.05, means over the seeds): its val_loss turned back up"]
