"""bench/webhooks.py still runs (on tiny sizes; the figures come from a full run)."""
import re
import subprocess
import sys

from tests.stack import ROOT


def test_webhooks_bench_runs_and_reports_the_finish_and_the_sender():
    out = subprocess.run([sys.executable, "-m", "bench.webhooks", "--jobs", "5", "--webhooks", "2",
                          "--slow-seconds", "0.5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"sqlite: finish median [\d.]+ ms without webhooks, [\d.]+ ms with 2 subscribed", out.stdout)
    assert re.search(r"10 deliveries in [\d.]+ s .*beside a 0.5 s receiver: 10 in", out.stdout), out.stdout
