"""A study's search: its space, and Optuna's sampling and pruning, asked of a study rebuilt from our tables.

Optuna's state is not kept in Optuna's storage. The study's member jobs and their epoch
metrics are the one source of truth; for each decision the deciding process builds an
in-memory Optuna study from them. Why: one truth, written in the same transactions as the
jobs; no second schema and no Optuna migrations on our database; the same on SQLite and
PostgreSQL (Optuna's RDB storage on SQLite from many processes locks); and any process, API
or worker, can decide, so a lost worker loses no search state.

- The next trial's params (``next_params``): every member is added as a finished or running
  trial (``create_trial``) and the sampler (TPE, random or CMA-ES), seeded with (the study's
  seed, the trial number) so that the same history proposes the same trial, is asked once. A
  grid is walked in a seeded order (``_next_grid_point`` says why not with Optuna's sampler).
- Whether to prune a member now (``prune_verdict``): the median pruner reads the trials as they
  stand, so the same rebuilt study serves, and its ``prune`` is asked about the member.
  Successive halving and Hyperband keep state in the trials as they go (each trial's value at
  each rung it passed), which our tables do not hold: for them the members' epoch values are
  replayed in the order they were recorded (the metrics' ids) through ``trial.report`` and
  ``should_prune`` (at the epochs where a rung may be recorded), each member told its end after
  its last value, as an Optuna loop makes them. CMA-ES keeps its generations the same way, so
  its trials are asked and told again in number order.

Measured on this 2-core machine, 200 trials x 100 epochs (``python -m app.studies.search``):
next_params 0.02-0.04 s (tpe, random), 1.1 s (cmaes); prune_verdict 0.04 s (median), 0.3 s
(successive halving), 0.4 s (hyperband). A pruned member's worker asks once per epoch.
"""
import itertools
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import optuna
from optuna.trial import TrialState, create_trial

from app.studies.search_space import Dimension, PrunerSpec, SearchSpec, corners  # noqa: F401 (the search's API)

optuna.logging.set_verbosity(optuna.logging.ERROR)


@dataclass(frozen=True)
class TrialRecord:
    number: int  # 0, 1, 2 ... in creation order (the member's index)
    params: dict[str, Any]  # space path -> value, as next_params gave it
    state: Literal["running", "complete", "pruned", "failed"]  # waiting members count as running
    values: dict[int, float] = field(default_factory=dict)  # epoch -> objective (finite values only)


def direction(mode: str) -> str:
    return "maximize" if mode == "max" else "minimize"


def prunes(search: SearchSpec | None) -> bool:
    return search is not None and search.pruner.type != "none"


def _sampler(search: SearchSpec, seed: int, number: int) -> optuna.samplers.BaseSampler:
    # One seed per trial: a sampler rebuilt with one fixed seed would propose the same point every time.
    s = int(np.random.SeedSequence([seed % 2**63, number]).generate_state(1)[0])
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=s)
    if search.sampler == "cmaes":
        # CMA-ES samples the numeric dimensions; Optuna samples each choice dimension at random.
        return optuna.samplers.CmaEsSampler(seed=s, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=s)


def _frozen(search: SearchSpec, record: TrialRecord, dists: dict) -> optuna.trial.FrozenTrial:
    params = {k: search.space[k].encode(v) for k, v in record.params.items() if k in dists}
    state = {"running": TrialState.RUNNING, "complete": TrialState.COMPLETE,
             "pruned": TrialState.PRUNED}.get(record.state, TrialState.FAIL)
    if state == TrialState.COMPLETE and not record.values:
        state = TrialState.FAIL  # ended without an objective value: nothing to learn from
    value = record.values[max(record.values)] if state == TrialState.COMPLETE else None
    values = record.values if state != TrialState.FAIL else {}
    try:
        return create_trial(state=state, value=value, params=params, distributions=dists, intermediate_values=values)
    except ValueError:  # params outside today's space (a member made by hand): its outcome alone
        return create_trial(state=TrialState.FAIL, params={}, distributions={})


def next_params(*, search: SearchSpec, mode: str, trials: list[TrialRecord], seed: int) -> dict[str, Any] | None:
    """The params of trial number len(trials); None once a grid has no point left."""
    if search.sampler == "grid":
        return _next_grid_point(search, trials, seed)
    dists = {k: d.distribution() for k, d in search.space.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental-feature notices
        study = optuna.create_study(direction=direction(mode), sampler=_sampler(search, seed, len(trials)))
        if search.sampler == "cmaes":
            _tell_in_order(study, search, dists, trials)
        else:
            for record in sorted(trials, key=lambda r: r.number):
                study.add_trial(_frozen(search, record, dists))
        trial = study.ask(dists)
    return {k: search.space[k].decode(trial.params[k]) for k in search.space}


def _tell_in_order(study, search: SearchSpec, dists: dict, trials: list[TrialRecord]) -> None:
    """The trials asked and told one after another, as an Optuna loop makes them.

    CMA-ES keeps its generations in each trial's own attributes, set when the trial's relative
    params are first read; trials added whole (create_trial) have none, and it would sample its
    first generation forever.
    """
    for record in sorted(trials, key=lambda r: r.number):
        study.enqueue_trial({k: search.space[k].encode(v) for k, v in record.params.items()})
        trial = study.ask(dists)
        _ = trial.relative_params  # where CMA-ES records the trial's generation
        frozen = _frozen(search, record, dists)
        if frozen.state == TrialState.COMPLETE:
            study.tell(trial, frozen.value)
        elif frozen.state != TrialState.RUNNING:
            study.tell(trial, state=frozen.state)


def _next_grid_point(search: SearchSpec, trials: list[TrialRecord], seed: int) -> dict[str, Any] | None:
    """The first grid point no trial has taken, in an order shuffled by the study's seed.

    Not Optuna's GridSampler: it finds the points taken in its own bookkeeping in each trial
    (system attributes of its own), which a study rebuilt from our tables does not have; a
    grid needs nothing else from it.
    """
    keys = list(search.space)
    points = list(itertools.product(*(search.space[k].choice for k in keys)))
    taken = [[r.params.get(k) for k in keys] for r in trials]
    for i in np.random.default_rng(seed % 2**63).permutation(len(points)):
        if list(points[i]) not in taken:
            return dict(zip(keys, points[i]))
    return None


def prune_verdict(*, search: SearchSpec, metric: str, mode: str, trials: list[TrialRecord],
                  reports: list[tuple[int, int, float]], number: int, max_epochs: int) -> str | None:
    """Whether the pruner stops trial ``number`` at its latest reported epoch: None to keep training,
    else why, naming the rule and the numbers. ``reports`` are (trial number, epoch, value) in the
    order they were recorded."""
    if not prunes(search):
        return None
    records = {r.number: r for r in trials}
    mine = [(n, e, v) for n, e, v in reports if n == number]
    if number not in records or not mine:
        return None
    dists = {k: d.distribution() for k, d in search.space.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction=direction(mode), sampler=optuna.samplers.RandomSampler(seed=0),
                                    pruner=search.pruner.build(max_epochs), study_name="trainyard")
        if search.pruner.type == "median":
            # Stateless: it reads the trials as they stand now, which is when it decides.
            study.add_trials([_frozen(search, r, dists) for r in sorted(trials, key=lambda r: r.number)])
            frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == _position(trials, number))
            pruned = study.pruner.prune(study, frozen)
        else:
            rungs = _rung_epochs(search.pruner, max_epochs)
            pruned = _replay(study, search, dists, records, reports, until=number, rungs=rungs).should_prune()
    if not pruned:
        return None
    epoch, value = mine[-1][1], mine[-1][2]
    return _reason(search.pruner, study, metric, mode, epoch, value, [v for _, _, v in mine])


def _position(trials: list[TrialRecord], number: int) -> int:
    return sorted(r.number for r in trials).index(number)


def _rung_epochs(pruner: PrunerSpec, max_epochs: int) -> set[int]:
    """The epochs at which successive halving (any of Hyperband's brackets) may record a rung."""
    factor = pruner.reduction_factor or (3 if pruner.type == "hyperband" else 4)
    out, epoch = set(), pruner.min_resource
    while epoch <= max_epochs:
        out.add(epoch)
        epoch *= factor
    return out


def _replay(study, search: SearchSpec, dists: dict, records: dict, reports: list, until: int,
            rungs: set[int]) -> optuna.Trial:
    """Every report up to the member's last one, made as an Optuna loop makes them (should_prune at the
    epochs where a rung may be recorded: elsewhere it changes nothing); returns the member's trial."""
    last_report = {n: i for i, (n, _, _) in enumerate(reports)}
    live: dict[int, optuna.Trial] = {}
    for i, (n, epoch, value) in enumerate(reports):
        while len(live) <= n:  # trials are made in number order
            record = records.get(len(live))
            study.enqueue_trial({k: search.space[k].encode(v) for k, v in record.params.items()} if record else {})
            live[len(live)] = study.ask(dists)
        trial = live[n]
        trial.report(value, epoch)
        if n == until and i == last_report[until]:
            return trial  # the caller asks this one
        if epoch in rungs:
            trial.should_prune()  # successive halving records the trial's value at this rung
        if i == last_report[n] and records[n].state != "running":
            state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(records[n].state,
                                                                                      TrialState.FAIL)
            study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    raise ValueError(f"trial {until} has no report")


def _reason(pruner: PrunerSpec, study, metric: str, mode: str, epoch: int, value: float, mine: list[float]) -> str:
    worse = "below" if mode == "max" else "above"
    if pruner.type == "median":  # Optuna compares the trial's best value so far with the median
        best = max(mine) if mode == "max" else min(mine)
        done = [t.intermediate_values[epoch] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if epoch in t.intermediate_values]
        median = float(np.nanmedian(done))
        return (f"pruned at epoch {epoch}: {metric} {best:.3g} (its best so far) is {worse} the median "
                f"{median:.3g} of {len(done)} completed trials at epoch {epoch} (median pruner, after "
                f"{pruner.n_startup_trials} startup trials and {pruner.n_warmup_steps} warm-up epochs)")
    factor = pruner.reduction_factor or (3 if pruner.type == "hyperband" else 4)
    rule = "hyperband" if pruner.type == "hyperband" else "successive halving"
    return (f"pruned at epoch {epoch}: {metric} {value:.3g} is not in the best 1/{factor} of the trials that "
            f"reached this rung ({rule}, reduction factor {factor}, first rung at epoch {pruner.min_resource})")


if __name__ == "__main__":  # what one decision costs: python -m app.studies.search [trials] [epochs]
    import sys

    n, epochs = (int(a) for a in (sys.argv[1:3] or (200, 100)))
    rng = np.random.default_rng(0)
    for sampler, pruner in (("tpe", "median"), ("random", "successive_halving"), ("random", "hyperband"),
                            ("cmaes", "none")):
        spec = SearchSpec(space={"optimizer.lr": Dimension(log_uniform=(1e-4, 1e-1))}, trials=n, sampler=sampler,
                          pruner=pruner)
        records = [TrialRecord(i, {"optimizer.lr": 10 ** -rng.uniform(1, 4)}, "complete" if i < n - 1 else "running",
                               {e: float(rng.uniform()) for e in range(1, epochs + 1)}) for i in range(n)]
        reports = [(r.number, e, v) for r in records for e, v in r.values.items()]
        started = time.perf_counter()
        next_params(search=spec, mode="min", trials=records, seed=1)
        asked = time.perf_counter()
        prune_verdict(search=spec, metric="val_loss", mode="min", trials=records, reports=reports, number=n - 1,
                      max_epochs=epochs)
        print(f"{n} trials x {epochs} epochs, {sampler}: next_params {asked - started:.2f} s; "
              f"{pruner}: prune_verdict {time.perf_counter() - asked:.2f} s")
