"""The study leaderboard against figures computed here with numpy and scipy from the hand-built histories."""
import json

import numpy as np
import pytest
from scipy import stats

from app.studies.history import Objective
from app.studies.leaderboard import leaderboard
from tests.studies.histories import member, study

VAL_LOSS = Objective(metric="val_loss", mode="min", target=0.4)
VAL_ACCURACY = Objective(metric="val_accuracy", mode="max", target=0.9)

# The succeeded members' val_loss curves, written out from TABLE (None dropped, with its epoch).
ADAM = [([1, 2, 3, 4], [0.9, 0.5, 0.3, 0.2]), ([1, 3, 4], [1.0, 0.45, 0.22]), ([1, 2, 3, 4], [0.95, 0.55, 0.21, 0.25])]
NESTEROV = [([1, 2, 3, 4], [1.0, 0.7, 0.5, 0.4]), ([1, 2, 3, 4], [1.1, 0.8, 0.6, 0.45])]


def assert_stat(stat, values):
    """The Stat is the numpy mean, sample std, min and max of ``values``."""
    a = np.asarray(values, dtype=float)
    assert stat.n == a.size
    assert stat.mean == pytest.approx(np.mean(a))
    assert stat.std == (pytest.approx(np.std(a, ddof=1)) if a.size >= 2 else None)
    assert (stat.min, stat.max) == (pytest.approx(np.min(a)), pytest.approx(np.max(a)))


def rows_by_label(board):
    return {row.variant: row for row in board.rows}


def test_rows_rank_by_final_mean_and_the_unfinished_variant_comes_last():
    board = leaderboard(study(), VAL_LOSS)
    assert [(r.variant, r.rank) for r in board.rows] == [("adam", 1), ("nesterov", 2), ("sgd", 3), ("rmsprop", None)]
    assert board.winner == "adam"
    rmsprop = rows_by_label(board)["rmsprop"]  # its 0.1 is better than any, but it is still running
    assert rmsprop.final.model_dump() == {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    assert rmsprop.members == {"running": 1}


def test_figures_are_over_succeeded_members_only():
    rows = rows_by_label(leaderboard(study(), VAL_LOSS))
    adam, nesterov, sgd = rows["adam"], rows["nesterov"], rows["sgd"]
    assert_stat(adam.final, [0.2, 0.22, 0.25])
    assert_stat(adam.best, [0.2, 0.22, 0.21])  # seed 3 ended above its best
    assert_stat(adam.auc, [np.trapezoid(y, x=x) for x, y in ADAM])  # seed 2's None is bridged
    assert_stat(adam.wall_seconds, [1.0, 1.5, 1.2])
    assert_stat(nesterov.final, [0.4, 0.45])  # not the pruned seed's 0.9
    assert_stat(nesterov.auc, [np.trapezoid(y, x=x) for x, y in NESTEROV])
    assert_stat(nesterov.wall_seconds, [0.9, 1.1])
    assert_stat(sgd.final, [0.7])
    assert sgd.final.std is None
    assert nesterov.members == {"succeeded": 2, "pruned": 1}
    assert sgd.members == {"succeeded": 1, "failed": 1, "cancelled": 1}
    assert sgd.seeds == [1, 2, 3]


def test_time_to_target_counts_the_first_epoch_at_or_below_it():
    rows = rows_by_label(leaderboard(study(), VAL_LOSS))
    adam, nesterov, sgd = rows["adam"].to_target, rows["nesterov"].to_target, rows["sgd"].to_target
    assert (adam.reached, adam.n) == (3, 3)
    assert_stat(adam.epochs, [3, 4, 3])  # seed 2 was at 0.45 in epoch 3
    assert_stat(adam.seconds, [0.1 * 3, 0.2 * 4, 0.1 + 0.15 + 0.1])
    assert (nesterov.reached, nesterov.n) == (1, 2)  # seed 1 ends exactly at 0.4; seed 2 at 0.45
    assert_stat(nesterov.epochs, [4])
    assert_stat(nesterov.seconds, [0.4])
    assert (sgd.reached, sgd.n) == (0, 1)
    assert sgd.epochs.n == 0 and sgd.epochs.mean is None


def test_no_target_no_time_to_target():
    board = leaderboard(study(), Objective(metric="val_loss", mode="min", target=None))
    assert all(row.to_target is None for row in board.rows)


def test_mode_max_ranks_the_highest_accuracy_first():
    board = leaderboard(study(), VAL_ACCURACY)
    rows = rows_by_label(board)
    assert [r.variant for r in board.rows] == ["adam", "nesterov", "sgd", "rmsprop"]
    assert_stat(rows["adam"].final, [0.95, 0.93, 0.94])
    assert_stat(rows["nesterov"].best, [0.85, 0.8])
    assert_stat(rows["adam"].to_target.epochs, [3, 4, 3])  # seed 1 and 3 reach exactly 0.9 in epoch 3
    assert rows["nesterov"].to_target.reached == 0
    p = stats.ttest_ind([0.95, 0.93, 0.94], [0.85, 0.8], equal_var=False).pvalue
    assert board.lead.p_value == pytest.approx(p)
    assert board.lead.significant is False and p >= 0.05


def test_lead_is_welchs_t_test_of_the_finals():
    lead = leaderboard(study(), VAL_LOSS).lead
    p = stats.ttest_ind([0.2, 0.22, 0.25], [0.4, 0.45], equal_var=False).pvalue
    assert lead.test == "welch_t" and lead.against == "nesterov"
    assert lead.p_value == pytest.approx(p)
    assert lead.significant is True and p < 0.05
    assert (lead.n_winner, lead.n_runner_up) == (3, 2)


def test_summary_says_who_leads_with_the_numbers():
    summary = leaderboard(study(), VAL_LOSS).summary
    adam, nesterov = np.array([0.2, 0.22, 0.25]), np.array([0.4, 0.45])
    p = stats.ttest_ind(adam, nesterov, equal_var=False).pvalue
    assert summary.startswith("adam leads on val_loss")
    assert f"({np.mean(adam):.3g} ± {np.std(adam, ddof=1):.3g}, n=3)" in summary
    assert f"over nesterov ({np.mean(nesterov):.3g} ± {np.std(nesterov, ddof=1):.3g}, n=2)" in summary
    assert f"p={p:.2g}" in summary and "larger than the seed spread" in summary
    assert "within the seed spread" in leaderboard(study(), VAL_ACCURACY).summary


def test_a_winner_with_one_seed_cannot_be_tested():
    members = [member("solo", 1, "succeeded", [0.5, 0.1]),
               member("pair", 1, "succeeded", [0.5, 0.3]), member("pair", 2, "succeeded", [0.5, 0.4])]
    board = leaderboard(members, VAL_LOSS)
    assert board.winner == "solo"
    assert board.lead.p_value is None and board.lead.significant is None
    assert "at least 2 succeeded seeds" in board.lead.note and "solo has 1" in board.lead.note
    assert (board.lead.n_winner, board.lead.n_runner_up) == (1, 2)
    assert board.lead.note in board.summary and "(0.1, n=1)" in board.summary


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy, on the [0.2, 0.2] side
def test_no_spread_on_either_side_cannot_be_tested_but_one_side_can():
    flat = [member("a", s, "succeeded", [0.5, 0.2]) for s in (1, 2)] + \
           [member("b", s, "succeeded", [0.5, 0.3]) for s in (1, 2)]
    lead = leaderboard(flat, VAL_LOSS).lead
    assert lead.p_value is None and "no seed spread" in lead.note  # scipy alone would say p=0
    one_flat = flat[:2] + [member("b", 1, "succeeded", [0.5, 0.3]), member("b", 2, "succeeded", [0.5, 0.4])]
    lead = leaderboard(one_flat, VAL_LOSS).lead
    assert lead.p_value == pytest.approx(stats.ttest_ind([0.2, 0.2], [0.3, 0.4], equal_var=False).pvalue)


def test_one_ranked_variant_wins_without_a_lead():
    members = [member("adam", 1, "succeeded", [0.5, 0.2]), member("sgd", 1, "failed", [0.9])]
    board = leaderboard(members, VAL_LOSS)
    assert board.winner == "adam" and board.lead is None
    assert [r.rank for r in board.rows] == [1, None]
    assert "adam is the only variant" in board.summary and "0.2, n=1" in board.summary


def test_no_succeeded_member_ranks_nothing_and_keeps_label_order():
    members = [member("zeta", 1, "running", [0.5]), member("alpha", 1, "pruned", [0.4]),
               member("mid", 1, "succeeded", [None, None])]  # succeeded, but never a val_loss
    board = leaderboard(members, VAL_LOSS)
    assert [(r.variant, r.rank) for r in board.rows] == [("alpha", None), ("mid", None), ("zeta", None)]
    assert board.winner is None and board.lead is None
    assert board.summary == "no variant has a succeeded member with a val_loss value yet"
    assert leaderboard([], VAL_LOSS).rows == []


def test_equal_final_means_rank_by_label():
    members = [member("b", 1, "succeeded", [0.5, 0.3]), member("a", 1, "succeeded", [0.6, 0.3])]
    assert [r.variant for r in leaderboard(members, VAL_LOSS).rows] == ["a", "b"]


def test_missing_and_non_finite_values_are_skipped():
    members = [member("a", 1, "succeeded", [0.9, 0.4, float("nan")]),  # diverged: stored NaN reads None
               member("a", 2, "succeeded", [0.8, 0.5, None]),
               member("a", 3, "succeeded", [0.7])]  # one point: no area
    row = leaderboard(members, VAL_LOSS).rows[0]
    assert_stat(row.final, [0.4, 0.5, 0.7])
    assert_stat(row.auc, [np.trapezoid([0.9, 0.4], x=[1, 2]), np.trapezoid([0.8, 0.5], x=[1, 2])])


def test_unknown_epoch_seconds_leave_the_member_out_of_the_seconds_to_target():
    members = [member("a", 1, "succeeded", [0.9, 0.3], seconds=[0.1, None]),
               member("a", 2, "succeeded", [0.9, 0.3], seconds=[0.1, 0.2])]
    to_target = leaderboard(members, VAL_LOSS).rows[0].to_target
    assert to_target.reached == 2 and to_target.epochs.n == 2
    assert_stat(to_target.seconds, [0.3])


def test_the_leaderboard_is_json():
    board = leaderboard(study(), VAL_LOSS)
    data = json.loads(board.model_dump_json())
    assert data["objective"] == {"metric": "val_loss", "mode": "min", "target": 0.4}
    assert data["rows"][0]["variant"] == "adam" and data["lead"]["against"] == "nesterov"


def test_the_lead_is_also_tested_paired_by_seed_where_the_seeds_spread_is_the_splits():
    # Each seed moves both variants alike (its split and its initial weights); a beats b on every seed.
    seeds = {1: 0.05, 2: 0.30, 3: 0.15}
    a = [member("a", s, "succeeded", [1.0, base]) for s, base in seeds.items()]
    b = [member("b", s, "succeeded", [1.0, base + 0.02 + 0.001 * s]) for s, base in seeds.items()]
    board = leaderboard(a + b, VAL_LOSS)
    finals_a = [base for base in seeds.values()]
    finals_b = [base + 0.02 + 0.001 * s for s, base in seeds.items()]
    assert board.lead.p_value == pytest.approx(stats.ttest_ind(finals_a, finals_b, equal_var=False).pvalue)
    assert board.lead.p_value > 0.5  # within the seed spread, unpaired
    assert board.lead.n_pairs == 3
    assert board.lead.paired_p_value == pytest.approx(stats.ttest_rel(finals_a, finals_b).pvalue)
    assert board.lead.paired_p_value < 0.01
    assert f"paired by seed over 3 seeds: p={board.lead.paired_p_value:.2g}" in board.summary \
        or "paired by seed over 3 seeds: p<0.001" in board.summary
    only_one = leaderboard(a + b[:1] + [member("b", 9, "succeeded", [1.0, 0.2])], VAL_LOSS)
    assert (only_one.lead.paired_p_value, only_one.lead.n_pairs) == (None, 1)
