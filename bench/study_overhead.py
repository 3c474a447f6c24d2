"""What a study costs over training its members in one process: 16 tiny jobs four ways, on both deployments.

The 16 members are 8 Adam learning rates x 2 seeds of one tiny spec (the builtin iris, 20%
held out, an MLP 4-16-3, 3 epochs, mini-batches of 32), run:

  in-process   an Optuna study in this process (GridSampler over the same 16 (lr, seed) pairs)
               whose objective trains the spec with worker.training.train: no service at all
  study        one POST /v1/studies (variants x seeds, parallel 1: one worker), until its end
  sequential   a client POSTs each spec as a lone job, waits for its end (polling GET
               /v1/jobs/{id} every 0.05 s), then POSTs the next
  all-at-once  the 16 specs POSTed as lone jobs back to back, until the last one ends

On each deployment (API + one worker, as the tests start one) the four run --rounds times,
in turn, so a busier minute of a shared machine hits each of them. A service round runs from
the client's clock just before the first POST to the last member's finished_at (stamped by
the worker; one machine, one clock); an in-process round, around study.optimize().
"best s" is the fastest round: on a shared machine the slower ones measure the other
processes (timeit's advice); "median s" shows how far they went. "per member" is best / 16;
"overhead/member" is (best - the in-process best) / 16, what the service adds to each member;
"ratio" is best over the in-process best. "run ms" is the median member's own time
(started_at to finished_at: the claim, training, metric writes, weights and finish; in
process, its train()), "gap ms" the median time from one member's end to the next one's
start (the worker trains one at a time: the study's release of the next member or the
client's POST, the broker's delivery, the claim; in process, Optuna's bookkeeping).
The study's members (rates x seeds of one spec) train together as one pack since issue 20
(app/studies/packing.py): their runs overlap, so its "gap ms" is negative.
"same" says whether every member's last val_loss equals the in-process one bit for bit: the
four ways trained the same 16 networks. Each deployment and the process are first warmed up
with WARM_UP jobs of the spec, so no mode pays the first jobs' lazy initialization.

    .venv/bin/python bench/study_overhead.py                                   # both deployments
    .venv/bin/python bench/study_overhead.py --lrs 0.01,0.1 --seeds 1 --epochs 1 --deployments embedded
"""
import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import deployment  # noqa: E402

LRS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
SEEDS = [1, 2]
# Jobs (and train() calls) run before measuring: the first three train() calls in a fresh
# process took 1.1-2.1 s, then up to 0.5 s twice on the dev VM (6 tries), the next ones 0.005-0.1 s.
WARM_UP = 3
TERMINAL = ("succeeded", "failed", "cancelled", "pruned")
MODEL = {"layers": [{"type": "linear", "out_features": 16}, {"type": "relu"},
                    {"type": "linear", "out_features": 3}]}


def base_spec(epochs: int) -> dict:
    return {"dataset": "iris", "model": MODEL, "loss": {"type": "cross_entropy"},
            "optimizer": {"type": "adam", "lr": LRS[0]},
            "training": {"epochs": epochs, "batch_size": 32, "validation_split": 0.2, "seed": 0}}


def member_spec(base: dict, lr: float, seed: int) -> dict:
    """A member's spec as the study makes it: the base with optimizer.lr and training.seed set."""
    return {**base, "optimizer": {**base["optimizer"], "lr": lr}, "training": {**base["training"], "seed": seed}}


def study_body(base: dict, lrs: list[float], seeds: list[int]) -> dict:
    return {"name": "study overhead", "base": base, "seeds": seeds, "parallel": 1,
            "variants": [{"label": f"lr={lr:g}", "set": {"optimizer.lr": lr}} for lr in lrs],
            "objective": {"metric": "val_loss", "mode": "min"}}


@dataclass
class Measured:
    """One mode's rounds: each round's seconds, each member's last val_loss, and per member its own
    time (run) and the time from the previous member's end to its start (gap)."""

    seconds: list[float] = field(default_factory=list)
    finals: dict[tuple[float, int], float] = field(default_factory=dict)
    runs: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)

    def add_round(self, seconds: float, spans: list[tuple[float, float]]) -> None:
        """A round's seconds and its members' (start, end), which ran one after another."""
        spans = sorted(spans)
        self.seconds.append(seconds)
        self.runs += [end - start for start, end in spans]
        self.gaps += [start - spans[i - 1][1] for i, (start, _) in enumerate(spans) if i]


# ---- in one process ---------------------------------------------------------------

def in_process(base: dict, lrs: list[float], seeds: list[int]) -> Callable[[], tuple[float, list, dict]]:
    """A round of an Optuna grid over (lr, seed) training each spec in this process: a function that
    runs one and returns (seconds, each trial's (start, end), finals). Warmed up here."""
    import optuna
    import torch

    from app.ml import builtin_datasets
    from app.ml.spec import JobSpec
    from worker.training import Hooks, train

    data = builtin_datasets.load("iris")

    def final_val_loss(spec: dict) -> float:
        points: list[dict] = []
        train(JobSpec.model_validate(spec), data.x, data.y, torch.device("cpu"),
              Hooks(flush=lambda batch, epoch, step: points.extend(batch), flush_seconds=0))
        return [p for p in points if p["kind"] == "epoch"][-1]["val_loss"]

    def one_round() -> tuple[float, list, dict]:
        spans, finals = [], {}

        def objective(trial: "optuna.Trial") -> float:
            lr, seed = trial.suggest_categorical("lr", lrs), trial.suggest_categorical("seed", seeds)
            started = time.perf_counter()
            finals[lr, seed] = final_val_loss(member_spec(base, lr, seed))
            spans.append((started, time.perf_counter()))
            return finals[lr, seed]

        started = time.perf_counter()
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.GridSampler(
            {"lr": lrs, "seed": seeds}, seed=0))
        study.optimize(objective, n_trials=len(lrs) * len(seeds))
        return time.perf_counter() - started, spans, finals

    for _ in range(WARM_UP):
        final_val_loss(member_spec(base, lrs[0], seeds[0]))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return one_round


# ---- through the service ----------------------------------------------------------

def stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def wait_jobs(api, ids: list[str], timeout: float) -> list[dict]:
    """The jobs ``ids`` once every one has ended (one listing per look, not a GET per job)."""
    deadline, wanted = time.monotonic() + timeout, set(ids)
    while time.monotonic() < deadline:
        jobs = [j for j in api.get("/v1/jobs", params={"limit": 500}).json()["items"] if j["id"] in wanted]
        if len(jobs) == len(wanted) and all(j["status"] in TERMINAL for j in jobs):
            return jobs
        time.sleep(0.25)
    raise RuntimeError(f"{len(ids)} jobs did not end in {timeout:g} s")


def finals_of(api, jobs: list[dict]) -> dict[tuple[float, int], float]:
    """(lr, seed) -> last val_loss of each job, read from its stored spec; one that did not succeed
    fails the bench."""
    bad = [j for j in jobs if j["status"] != "succeeded"]
    if bad:
        raise RuntimeError(f"{len(bad)} jobs did not succeed, e.g. {bad[0]}")
    finals = {}
    for j in jobs:
        spec = api.get(f"/v1/jobs/{j['id']}/spec").json()["spec"]
        finals[spec["optimizer"]["lr"], spec["training"]["seed"]] = j["latest_metrics"]["val_loss"]
    return finals


def submit(api, spec: dict) -> str:
    return api.post("/v1/jobs", json=spec).raise_for_status().json()["id"]


def run_study(api, body: dict, timeout: float) -> tuple[float, list[dict]]:
    started = time.time()
    r = api.post("/v1/studies", json=body)
    if r.status_code != 201:
        raise RuntimeError(f"POST /v1/studies answered {r.status_code}: {r.text}")
    jobs = wait_jobs(api, [m["job_id"] for m in r.json()["members"]], timeout)
    study = api.get(f"/v1/studies/{r.json()['id']}").json()
    if study["status"] != "completed":
        raise RuntimeError(f"the study ended {study['status']}: {study['counts']}")
    return max(stamp(j["finished_at"]) for j in jobs) - started, jobs


def run_sequential(api, specs: list[dict], timeout: float) -> tuple[float, list[dict]]:
    started, jobs = time.time(), []
    for spec in specs:
        job_id, deadline = submit(api, spec), time.monotonic() + timeout
        while (job := api.get(f"/v1/jobs/{job_id}").json())["status"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} did not end in {timeout:g} s")
            time.sleep(0.05)
        jobs.append(job)
    return stamp(jobs[-1]["finished_at"]) - started, jobs


def run_all_at_once(api, specs: list[dict], timeout: float) -> tuple[float, list[dict]]:
    started = time.time()
    jobs = wait_jobs(api, [submit(api, spec) for spec in specs], timeout)
    return max(stamp(j["finished_at"]) for j in jobs) - started, jobs


def warm_up(api, spec: dict, timeout: float) -> None:
    """WARM_UP jobs of the spec, one after another: the API's first check of iris, and the training
    process's first jobs, as in process."""
    for _ in range(WARM_UP):
        wait_jobs(api, [submit(api, spec)], timeout)


def bench(name: str, args, base: dict, in_process_round: Callable) -> dict[str, Measured]:
    """The in-process round and the service's three modes on one deployment, ``rounds`` times in turn."""
    specs = [member_spec(base, lr, seed) for seed in args.seeds for lr in args.lrs]  # the study's order
    modes = {"study": lambda api: run_study(api, study_body(base, args.lrs, args.seeds), args.timeout),
             "sequential": lambda api: run_sequential(api, specs, args.timeout),
             "all-at-once": lambda api: run_all_at_once(api, specs, args.timeout)}
    results = {mode: Measured() for mode in ("in-process", *modes)}
    with deployment(name) as stack, stack.client(stack.new_key(f"bench-{name}")) as api:
        warm_up(api, specs[0], args.timeout)
        for _ in range(args.rounds):  # in turn, so a slower minute of a shared machine hits every mode
            seconds, spans, finals = in_process_round()
            results["in-process"].add_round(seconds, spans)
            results["in-process"].finals.update(finals)
            for mode, run in modes.items():
                seconds, jobs = run(api)
                results[mode].add_round(seconds, [(stamp(j["started_at"]), stamp(j["finished_at"])) for j in jobs])
                results[mode].finals.update(finals_of(api, jobs))
    return results


HEADER = (f"{'deployment':<11} {'mode':<11} {'members':>7} {'rounds':>6} {'best s':>8} {'median s':>8} "
          f"{'per member':>10} {'overhead/member':>15} {'ratio':>6} {'run ms':>6} {'gap ms':>6} {'same':>4}")


def row(deployment_name: str, mode: str, m: Measured, baseline: Measured) -> str:
    """One line of the table: the fastest and the median round, the figures over the in-process
    fastest, and the members' median run and gap."""
    n, best, base = len(baseline.finals), min(m.seconds), min(baseline.seconds)
    overhead = "-" if m is baseline else f"{(best - base) / n:.3f}"
    same = "yes" if m.finals == baseline.finals else "no"
    gap = f"{np.median(m.gaps) * 1000:.0f}" if m.gaps else "-"
    return (f"{deployment_name:<11} {mode:<11} {n:>7} {len(m.seconds):>6} {best:>8.3f} "
            f"{float(np.median(m.seconds)):>8.3f} {best / n:>10.3f} {overhead:>15} {best / base:>6.1f} "
            f"{np.median(m.runs) * 1000:>6.0f} {gap:>6} {same:>4}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    floats = lambda v: [float(x) for x in v.split(",")]  # noqa: E731
    parser.add_argument("--lrs", type=floats, default=LRS, help="Adam learning rates, one variant each")
    parser.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=SEEDS)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5,
                        help="times each mode runs (the fastest and the median are shown)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds each mode may take")
    parser.add_argument("--deployments", default="embedded,production")
    args = parser.parse_args()
    base = base_spec(args.epochs)
    in_process_round = in_process(base, args.lrs, args.seeds)
    print(HEADER, flush=True)
    for name in args.deployments.split(","):
        results = bench(name.strip(), args, base, in_process_round)
        for mode, measured in results.items():
            print(row(name.strip(), mode, measured, results["in-process"]), flush=True)


if __name__ == "__main__":
    main()
