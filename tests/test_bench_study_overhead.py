"""bench/study_overhead.py still runs (on tiny sizes; the figures come from full runs, docs/benchmarks.md):
every mode trains the same members as the in-process baseline, and the derived columns are the
arithmetic of the printed seconds. Nothing here is timed."""
from tests.test_bench_api import read_table, run_bench

COLUMNS = ["deployment", "mode", "members", "rounds", "best s", "median s", "per member", "overhead/member",
           "ratio", "run ms", "gap ms", "same"]


def test_study_overhead_bench_runs_every_mode_on_the_same_members():
    out = run_bench("bench/study_overhead.py", "--lrs", "0.01,0.1", "--seeds", "1,2", "--epochs", "1",
                    "--rounds", "2", "--deployments", "embedded")
    rows = read_table(out, COLUMNS)
    assert [(r["deployment"], r["mode"]) for r in rows] == [
        ("embedded", "in-process"), ("embedded", "study"), ("embedded", "sequential"), ("embedded", "all-at-once")]
    base = float(rows[0]["best s"])
    assert base > 0 and rows[0]["ratio"] == "1.0" and rows[0]["overhead/member"] == "-", rows[0]
    for r in rows:
        # Every way trained the same 4 networks to the same last val_loss as in process.
        assert (r["members"], r["rounds"], r["same"]) == ("4", "2", "yes"), r
        best = float(r["best s"])
        assert 0 < best <= float(r["median s"]), r  # the median of two rounds is their mean
        assert abs(float(r["per member"]) - best / 4) <= 0.001, r
        # Members run one after another inside their round, so the 8 runs (2 rounds) sum to at most
        # the two rounds' seconds (2 x their median), and at least 4 of them are >= the median run.
        # A study's members (4 rates x seeds of one spec) train together as one pack
        # (app/studies/packing.py): each run is at most its round.
        run_ms = float(r["run ms"])
        if r["mode"] == "study":
            assert 0 < run_ms <= 1000 * max(float(r["median s"]), best) + 5, r
        else:
            assert 0 < run_ms and 4 * run_ms <= 2000 * float(r["median s"]) + 5, r
    for r in rows[1:]:
        # Recomputed from the printed seconds (3 decimals), to within their rounding and the column's.
        seconds, half = float(r["best s"]), 0.0005
        assert abs(float(r["overhead/member"]) - (seconds - base) / 4) <= 0.001, r
        low, high = (seconds - half) / (base + half), (seconds + half) / (base - half)
        assert low - 0.05 <= float(r["ratio"]) <= high + 0.05, r
        if r["mode"] != "study":  # a pack's members overlap: their gaps are negative
            assert float(r["gap ms"]) >= 0, r
