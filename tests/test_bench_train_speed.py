"""bench/train_speed.py still runs (on tiny sizes; the figures come from a full run)."""
import re
import subprocess
import sys

from tests.stack import ROOT

MODELS = ["mlp", "mlp-small", "cnn", "gru"]


def table(out: str, title: str) -> list[list[str]]:
    """The rows (split into cells) of the numbered table whose title starts with ``title``."""
    block = out.split(f"\n{title}", 1)[1].split("\n\n", 1)[0]
    _, header, *rows = block.strip("\n").splitlines()
    assert "model" in header
    return [r.split() for r in rows]


def ratio(cell: str) -> float:
    assert re.fullmatch(r"\d+\.\d+x", cell), cell
    value = float(cell[:-1])
    assert value > 0, cell
    return value


def test_train_speed_bench_runs_and_reports_every_table():
    out = subprocess.run([sys.executable, "bench/train_speed.py", "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "GPU available" not in out.stderr, out.stderr  # Lightning's notes, amid the table on a terminal

    engine_vs_raw = table(out.stdout, "1. engine vs a minimal raw loop")
    assert [r[0] for r in engine_vs_raw] == MODELS
    for model, raw_s, engine_ratio, same in engine_vs_raw:
        assert float(raw_s) > 0 and ratio(engine_ratio)
        assert same == "True", model  # the engine computes exactly the raw loop's losses and weights

    users = table(out.stdout, "2. the loops users write")
    assert [r[0] for r in users] == MODELS
    for _, engine_s, idiomatic, lightning in users:
        assert float(engine_s) > 0 and ratio(idiomatic) and ratio(lightning)

    logging = table(out.stdout, "3. a step point every step")
    assert [r[0] for r in logging] == MODELS
    for _, none_s, every in logging:
        assert float(none_s) > 0 and ratio(every)

    direct = table(out.stdout, "4. the ordinary calls vs the direct kernel calls")
    assert [r[0] for r in direct] == MODELS
    for model, direct_s, ordinary_s, gain, same in direct:
        assert float(direct_s) > 0 and float(ordinary_s) > 0 and ratio(gain)
        assert same == "True", model  # with DIRECT_KERNELS off too, exactly the raw loop's
