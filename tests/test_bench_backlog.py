"""bench/backlog.py still runs (on tiny sizes; the figures come from full runs, docs/benchmarks.md)
and reports the rate and the duplicates with sane figures. Nothing here is timed."""
from tests.test_bench_api import read_table, run_bench

COLUMNS = ["deployment", "per process", "jobs", "clients", "seconds", "jobs/s", "ratio", "wait p50 s",
           "wait max s", "watched s", "received", "dups", "in process"]


def test_backlog_bench_reports_the_rate_and_the_duplicates():
    # Resent after 1 s, swept every 0.5 s: a backlog of a few seconds may get duplicates.
    out = run_bench("bench/backlog.py", "--jobs", "4", "--clients", "2", "--deployments", "embedded",
                    "--resend-after", "1", "--reaper-interval", "0.5")
    (row,) = read_table(out, COLUMNS)
    assert (row["deployment"], row["per process"], row["jobs"], row["clients"]) == ("embedded", "0", "4", "2")
    assert float(row["seconds"]) > 0 and float(row["jobs/s"]) > 0 and row["ratio"] == "1.00", row
    assert 0 <= float(row["wait p50 s"]) <= float(row["wait max s"]) and float(row["watched s"]) >= 0, row
    # Every job's message arrived (resent ones too), and no duplicate reached a training process.
    assert int(row["dups"]) >= 0 and int(row["received"]) == 4 + int(row["dups"]), row
    assert row["in process"] == "0", row
