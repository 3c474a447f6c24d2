"""bench/submit_latency.py and bench/api_throughput.py still run (on tiny sizes; the figures
come from full runs, docs/benchmarks.md). Nothing here is timed."""
import subprocess
import sys

from tests.conftest import require_services
from tests.stack import ROOT


def run_bench(*args: str) -> tuple[list[str], list[list[str]]]:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    header, *rows = out.stdout.strip().splitlines()
    return header.split(), [row.split() for row in rows]


def test_submit_latency_bench_reports_percentiles_and_a_rate():
    header, rows = run_bench("bench/submit_latency.py", "--jobs", "2", "--seconds", "1", "--clients", "2",
                             "--deployments", "embedded")
    assert header[:6] == ["deployment", "network", "jobs", "p50", "ms", "p95"]
    assert [r[:2] for r in rows] == [["embedded", "same"], ["embedded", "new"]]
    for row in rows:
        deployment, network, jobs, p50, p95, worst, post, done, clients, rate, errors = row
        assert (jobs, clients, errors) == ("2", "2", "0")
        assert 0 < float(p50) <= float(p95) <= float(worst), row
        assert float(post) > 0 and float(done) > float(p50) and float(rate) > 0, row


def test_api_throughput_bench_compares_the_job_read_with_the_constant_endpoint():
    require_services()  # its default deployment is the production set
    header, rows = run_bench("bench/api_throughput.py", "--seconds", "0.5", "--warmup", "0.2",
                             "--connections", "4", "--jobs", "2", "--deployments", "embedded,production")
    assert "req/s" in header and "ratio" in header
    # The constant endpoint, every connection reading one job, then each reading one of 2.
    assert [r[:3] for r in rows] == [[name, endpoint, "4"] for name in ("embedded", "production")
                                     for endpoint in ("/healthz", "/v1/jobs/{id}", "/v1/jobs/{id}*2")]
    for row in rows:
        assert float(row[3]) > 0 and 0 < float(row[4]) <= float(row[5]), row  # req/s, p50 <= p99
    assert [r[6] == "-" for r in rows] == [True, False, False] * 2  # the ratio: on the job reads' rows
    assert all(float(r[6]) > 0 for r in rows if r[6] != "-")
