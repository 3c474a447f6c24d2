"""bench/data_parallel.py still runs (tiny sizes; the figures come from full runs, docs/benchmarks.md) and
reports the per-step all-reduce and both rates. Nothing here is timed."""
import re

from tests.test_bench_api import run_bench


def test_data_parallel_bench_reports_the_all_reduce_and_both_rates():
    out = run_bench("bench/data_parallel.py", "--rows", "512", "--batch", "64", "--epochs", "2", "--calls", "20")
    assert re.search(r"per-step all-reduce \(2 gloo ranks\): \d+ us", out), out
    assert re.search(r"1 process: [\d.]+ steps/s; 2 ranks: [\d.]+ steps/s \([\d.]+x\)", out), out
