"""bench/stream_latency.py still runs (on tiny sizes; the figures come from a full run)."""
import subprocess
import sys

from tests.stack import ROOT


def test_stream_latency_bench_runs_and_reports_percentiles():
    out = subprocess.run([sys.executable, "bench/stream_latency.py", "--clients", "3", "--epochs", "2",
                          "--deployments", "embedded"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    header, *rows = out.stdout.strip().splitlines()
    assert "p50 ms" in header and "p95 ms" in header
    assert [r.split()[:2] for r in rows] == [["embedded", "1"], ["embedded", "3"]]
    for row in rows:
        cells = row.split()
        assert float(cells[5]) > 0 and cells[-1] == "True", row  # p95, and every event once
