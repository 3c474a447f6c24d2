"""bench/store.py still runs (on a tiny size; the figures come from a full run)."""
import subprocess
import sys

from tests.stack import ROOT


def test_store_bench_runs_and_reports_both_stores():
    out = subprocess.run([sys.executable, "bench/store.py", "--sizes-mb", "1"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    header, *rows = out.stdout.strip().splitlines()
    assert "put_file MB/s" in header and "local_path cold MB/s" in header
    assert [r.split()[:2] for r in rows] == [["1", "file"], ["1", "s3"]]
    for row in rows:
        assert all(float(cell) > 0 for cell in row.split()[-4:-2]), row  # put_file, cold read
