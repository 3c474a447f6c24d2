"""bench/packing.py still runs (2 members of 1 epoch, once each way; the figures come from full runs,
docs/benchmarks.md) and reports both ways, the packed members equal to the lone jobs. Nothing here is timed."""
from tests.test_bench_api import run_bench


def test_packing_bench_reports_both_ways_and_equal_members():
    out = run_bench("bench/packing.py", "--members", "2", "--epochs", "1", "--rounds", "1")
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    header, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert header == ["run", "best s", "median s", "ratio"], out
    assert [r[0] for r in rows] == ["one after another", "packed"], out
    assert rows[0][3] == "1.00" and all(float(r[1]) > 0 for r in rows), out
    assert "final train_loss equal to the lone job's: 2 of 2 members" in out, out
