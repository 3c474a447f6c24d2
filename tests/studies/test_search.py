"""The search's space, and its sampling and pruning on a study rebuilt from records, against Optuna used
the usual way (one process, trial.report and should_prune) on the same curves."""
import numpy as np
import optuna
import pytest
from pydantic import ValidationError

from app.studies.search import Dimension, SearchSpec, TrialRecord, corners, next_params, prune_verdict

optuna.logging.set_verbosity(optuna.logging.ERROR)
LR = {"optimizer.lr": {"log_uniform": [1e-4, 1e-1]}}


def spec(**fields) -> SearchSpec:
    return SearchSpec.model_validate({"space": LR, "trials": 10, **fields})


@pytest.mark.parametrize("space, words", [
    ({"x": {"log_uniform": [0, 1]}}, "0 < low"),
    ({"x": {"uniform": [1, 1]}}, "low < high"),
    ({"x": {"uniform": [0, 1], "choice": [1]}}, "exactly one of"),
    ({"x": {}}, "exactly one of"),
    ({"x": {"choice": []}}, "at least 1"),
    ({"x": {"int": [5, 1]}}, "low < high"),
])
def test_a_bad_dimension_says_what_is_wrong(space, words):
    with pytest.raises(ValidationError) as exc:
        SearchSpec.model_validate({"space": space, "trials": 3})
    assert words in str(exc.value)


def test_the_grid_sampler_needs_choices_and_at_most_its_points():
    with pytest.raises(ValidationError, match="every dimension of the space to be a choice"):
        spec(sampler="grid")
    with pytest.raises(ValidationError, match="the grid has 4 points; give at most 4 trials") as exc:
        SearchSpec.model_validate({"space": {"a": {"choice": [1, 2]}, "b": {"choice": ["x", "y"]}},
                                   "trials": 5, "sampler": "grid"})
    assert exc.value.errors()[0]["loc"] == ("trials",)


def done(params: dict, curve: list[float], number: int, state="complete") -> TrialRecord:
    return TrialRecord(number, params, state, {e + 1: v for e, v in enumerate(curve)})


def test_the_same_history_proposes_the_same_trial_and_each_trial_its_own_seed():
    for sampler in ("random", "tpe", "cmaes"):
        s = spec(sampler=sampler)
        history = [done({"optimizer.lr": 10 ** -(1 + i / 3)}, [1 / (i + 1)], i) for i in range(4)]
        first = next_params(search=s, mode="min", trials=history, seed=7)
        assert first == next_params(search=s, mode="min", trials=history, seed=7)
        assert 1e-4 <= first["optimizer.lr"] <= 1e-1
    s = spec(sampler="random")
    proposed = [next_params(search=s, mode="min", trials=[done({"optimizer.lr": 0.01}, [1.0], i) for i in range(n)],
                            seed=7)["optimizer.lr"] for n in range(5)]
    assert len(set(proposed)) == 5


def test_the_grid_sampler_covers_the_grid_once_then_stops():
    s = SearchSpec.model_validate({"space": {"a": {"choice": [1, 2]}, "b": {"choice": [{"type": "sgd"}, {"type": "adam"}]}},
                                   "trials": 4, "sampler": "grid"})
    history: list[TrialRecord] = []
    for n in range(4):
        params = next_params(search=s, mode="min", trials=history, seed=1)
        history.append(done(params, [float(n)], n))
    assert sorted((p.params["a"], p.params["b"]["type"]) for p in history) == [
        (1, "adam"), (1, "sgd"), (2, "adam"), (2, "sgd")]
    assert next_params(search=s, mode="min", trials=history, seed=1) is None


def test_tpe_after_its_startup_trials_proposes_near_the_good_region():
    s = SearchSpec.model_validate({"space": {"x": {"uniform": [-10, 10]}}, "trials": 40, "sampler": "tpe"})
    history: list[TrialRecord] = []
    for n in range(40):
        x = next_params(search=s, mode="min", trials=history, seed=3)["x"]
        history.append(done({"x": x}, [(x - 3) ** 2], n))
    late = [r.params["x"] for r in history[10:]]  # after TPE's 10 random startup trials
    # Uniform over [-10, 10] would give about 5; Optuna's own loop with this seed gives 1.5-2.3.
    assert np.median(np.abs(np.array(late) - 3)) < 3


def test_cmaes_learns_across_generations_on_the_rebuilt_study():
    s = SearchSpec.model_validate({"space": {"x": {"uniform": [-10, 10]}, "y": {"uniform": [-10, 10]}},
                                   "trials": 60, "sampler": "cmaes"})
    history: list[TrialRecord] = []
    for n in range(60):
        p = next_params(search=s, mode="min", trials=history, seed=2)
        history.append(done(p, [(p["x"] - 3) ** 2 + (p["y"] + 2) ** 2], n))
    late = [r.values[1] for r in history[40:]]
    # Its first generation's spread (sigma about a third of the range) gives a median near 30.
    assert np.median(late) < 5, np.median(late)


def curves(n: int, epochs: int, seed: int = 0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [list(np.cumsum(rng.uniform(0.01, 0.2, epochs))[::-1] + rng.uniform(0, 2)) for _ in range(n)]


def optuna_loop(pruner, curves_: list[list[float]]) -> list[tuple[str, int]]:
    """Optuna used the usual way: trials one after another, report and should_prune each epoch."""
    study = optuna.create_study(pruner=pruner, study_name="trainyard", sampler=optuna.samplers.RandomSampler(0))
    outcome = []
    for curve in curves_:
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        for epoch, value in enumerate(curve, 1):
            trial.report(value, epoch)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                outcome.append(("pruned", epoch))
                break
        else:
            study.tell(trial, curve[-1])
            outcome.append(("complete", len(curve)))
    return outcome


@pytest.mark.parametrize("pruner", [
    {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
    {"type": "hyperband", "min_resource": 1, "reduction_factor": 3},
    {"type": "successive_halving", "min_resource": 1, "reduction_factor": 2},
])
def test_prune_verdicts_on_the_rebuilt_study_are_optunas_own(pruner):
    s = SearchSpec.model_validate({"space": {"x": {"uniform": [0, 1]}}, "trials": 12, "pruner": pruner})
    data = curves(12, 9, seed=5)
    expected = optuna_loop(s.pruner.build(9), data)
    assert any(state == "pruned" for state, _ in expected)  # the case is worth testing
    records: list[TrialRecord] = []
    reports: list[tuple[int, int, float]] = []
    for n, curve in enumerate(data):
        got = ("complete", len(curve))
        for epoch, value in enumerate(curve, 1):
            reports.append((n, epoch, value))
            mine = TrialRecord(n, {"x": 0.5}, "running", {e + 1: v for e, v in enumerate(curve[:epoch])})
            reason = prune_verdict(search=s, metric="val_loss", mode="min", trials=records + [mine],
                                   reports=reports, number=n, max_epochs=9)
            if reason:
                got = ("pruned", epoch)
                assert reason.startswith(f"pruned at epoch {epoch}: val_loss")
                break
        state = got[0]
        records.append(TrialRecord(n, {"x": 0.5}, state, {e + 1: v for e, v in enumerate(curve[:got[1]])}))
        assert got == expected[n], n


def test_the_median_reason_quotes_the_median_of_the_completed_trials():
    s = spec(pruner={"type": "median", "n_startup_trials": 3})
    finished = [done({"optimizer.lr": 0.01}, [0.5, 0.3, 0.2 + i / 10], i) for i in range(4)]
    mine = TrialRecord(4, {"optimizer.lr": 0.02}, "running", {1: 0.9, 2: 0.8, 3: 0.95})
    reports = [(r.number, e, v) for r in finished + [mine] for e, v in r.values.items()]
    reason = prune_verdict(search=s, metric="val_loss", mode="min", trials=finished + [mine], reports=reports,
                           number=4, max_epochs=3)
    median = np.median([0.2 + i / 10 for i in range(4)])
    assert reason.startswith(f"pruned at epoch 3: val_loss 0.8 (its best so far) is above the median {median:.3g} "
                             "of 4 completed trials at epoch 3"), reason
    good = TrialRecord(4, {"optimizer.lr": 0.02}, "running", {1: 0.4, 2: 0.2, 3: 0.1})
    reports = [(r.number, e, v) for r in finished + [good] for e, v in r.values.items()]
    assert prune_verdict(search=s, metric="val_loss", mode="min", trials=finished + [good], reports=reports,
                         number=4, max_epochs=3) is None
    assert prune_verdict(search=spec(), metric="val_loss", mode="min", trials=finished + [mine], reports=reports,
                         number=4, max_epochs=3) is None  # no pruner


def test_corners_touch_every_choice_and_both_ends_of_every_range():
    space = {k: Dimension.model_validate(v) for k, v in {
        "optimizer.lr": {"log_uniform": [1e-4, 1e-1]}, "optimizer.type": {"choice": ["sgd", "adam", "rmsprop"]},
        "training.batch_size": {"int": [8, 64]}}.items()}
    got = corners(space)
    assert {c["optimizer.type"] for c in got} == {"sgd", "adam", "rmsprop"}
    assert {c["optimizer.lr"] for c in got} == {1e-4, 1e-1} and {c["training.batch_size"] for c in got} == {8, 64}
    assert len(got) == 5
