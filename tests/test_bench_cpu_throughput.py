"""bench/cpu_throughput.py still runs (one tiny job on the split set-up, the one whose start differs:
two workers; each set-up is a fresh deployment, 17 s of the suite; the figures come from full runs,
docs/benchmarks.md) and reports its rate against the first row's. Nothing here is timed."""
from tests.test_bench_api import run_bench


def test_cpu_throughput_bench_reports_jobs_per_minute_per_setup():
    out = run_bench("bench/cpu_throughput.py", "--jobs", "1", "--epochs", "1", "--setups", "2 workers")
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    header, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert header == ["set-up", "jobs/min", "ratio"], out
    assert [r[0] for r in rows] == ["2 workers"], out
    assert rows[0][2] == "1.00" and all(float(r[1]) > 0 and float(r[2]) > 0 for r in rows), out
