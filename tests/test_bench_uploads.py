"""bench/uploads.py still runs (on a tiny file; the figures come from a full run)."""
import subprocess
import sys

from tests.stack import ROOT


def test_uploads_bench_runs_and_reports_each_phase():
    out = subprocess.run([sys.executable, "bench/uploads.py", "--mb", "2", "--part-mib", "1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    phases = [line for line in out.stdout.splitlines() if line.startswith(("resumable", "one-shot"))]
    assert [p.split(":")[0].split()[0] for p in phases] == ["resumable", "resumable", "one-shot"]
    for phase in phases:
        assert float(phase.split()[-5]) > 0 and phase.endswith("MiB"), phase  # MB/s
