"""bench/ingest.py still runs (--quick: one 10 MB CSV; the figures come from a full run)."""
import re
import subprocess
import sys

from tests.stack import ROOT


def test_ingest_bench_runs_and_reports_speed_and_memory():
    out = subprocess.run([sys.executable, "bench/ingest.py", "--quick"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if re.match(r"\s+\d+MB ", line)]
    assert len(rows) == 1, out.stdout
    size, count, seconds, speed, before, _, peak, _, growth, unit = rows[0]
    assert size == "10MB" and int(count.replace(",", "")) > 40_000 and unit == "MiB"
    assert float(seconds) > 0 and float(speed) > 0 and int(peak) >= int(before) > 0 and int(growth) >= 0
