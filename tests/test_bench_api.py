"""bench/submit_latency.py and bench/api_throughput.py still run (on tiny sizes; the figures
come from full runs, docs/benchmarks.md) and report every case with sane figures. Nothing
here is timed, and the report is read by its column names, whatever their widths."""
import re
import subprocess
import sys

from tests.conftest import require_services
from tests.stack import ROOT


def read_table(text: str, columns: list[str]) -> list[dict[str, str]]:
    """Each row of a printed table as {column: value}: a value belongs to the header name
    its characters overlap most (columns are aligned left or right, at any width)."""
    header, *rows = [line for line in text.strip().splitlines() if line.strip()]
    spans = {name: re.search(rf"(?<!\S){re.escape(name)}(?!\S)", header).span() for name in columns}

    def column_of(start: int, end: int) -> str | None:
        overlap = {name: min(end, e) - max(start, s) for name, (s, e) in spans.items()}
        best = max(overlap, key=overlap.get)
        return best if overlap[best] > 0 else None

    table = []
    for row in rows:
        cells = {}
        for token in re.finditer(r"\S+", row):
            name = column_of(*token.span())
            if name is not None:
                assert name not in cells, (name, row)
                cells[name] = token.group()
        assert set(cells) == set(columns), (row, cells)
        table.append(cells)
    return table


def run_bench(*args: str) -> str:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_submit_latency_bench_reports_percentiles_and_a_rate():
    out = run_bench("bench/submit_latency.py", "--jobs", "2", "--seconds", "1", "--clients", "2",
                    "--deployments", "embedded")
    rows = read_table(out, ["deployment", "network", "jobs", "p50 ms", "p95 ms", "max ms", "POST p50 ms",
                            "done p50 ms", "clients", "submits/s", "errors"])
    assert [(r["deployment"], r["network"]) for r in rows] == [("embedded", "same"), ("embedded", "new")]
    for r in rows:
        assert (r["jobs"], r["clients"], r["errors"]) == ("2", "2", "0"), r
        assert 0 < float(r["p50 ms"]) <= float(r["p95 ms"]) <= float(r["max ms"]), r
        assert float(r["POST p50 ms"]) > 0 and float(r["done p50 ms"]) > float(r["p50 ms"]), r
        assert float(r["submits/s"]) > 0, r


def test_api_throughput_bench_compares_the_job_read_with_the_constant_endpoint():
    require_services()  # its default deployment is the production set
    out = run_bench("bench/api_throughput.py", "--seconds", "0.5", "--warmup", "0.2",
                    "--connections", "4", "--jobs", "2", "--deployments", "production")
    rows = read_table(out, ["deployment", "endpoint", "conns", "req/s", "p50 ms", "p99 ms", "ratio"])
    # The constant endpoint, every connection reading one job, then each reading one of 2.
    # Its default deployment only: a second one cost the suite 10 s and runs the same code.
    cases = [("production", endpoint) for endpoint in ("/healthz", "/v1/jobs/{id}", "/v1/jobs/{id}*2")]
    assert [(r["deployment"], r["endpoint"]) for r in rows] == cases
    for r in rows:
        assert r["conns"] == "4" and float(r["req/s"]) > 0, r
        assert 0 < float(r["p50 ms"]) <= float(r["p99 ms"]), r
    # A ratio to /healthz's rate on each job read's row, a positive number; none on /healthz's own.
    for r in rows:
        if r["endpoint"] == "/healthz":
            assert r["ratio"] == "-", r
        else:
            assert float(r["ratio"]) > 0, r
