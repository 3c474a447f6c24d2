"""bench/metrics_scrape.py still runs (on a tiny history; the figures come from full runs,
docs/operations.md) and counts every job it stored. Nothing here is timed."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_metrics_scrape_bench_counts_the_jobs_it_made():
    out = subprocess.run([sys.executable, "-m", "bench.metrics_scrape", "--jobs", "300", "--repeat", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=True).stdout
    found = re.search(r"^sqlite: 300 jobs, (\d+) counted; scrape reads median ([\d.]+) ms", out, re.M)
    assert found and found.group(1) == "300", out
    assert float(found.group(2)) > 0
