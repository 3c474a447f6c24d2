"""The classic convergence comparison: thirteen optimizers, first-order to second-order, on three
problems, each problem run as one study through the API.

Starts a real deployment (API + a worker process, as the tests do), uploads the data, and for
each problem submits ONE study (POST /v1/studies) with a variant per optimizer, full-batch
training (every method sees the same objective at every step), mse loss, and the objective
"train_loss at or below the target". It writes what the service computed: the leaderboard
(epochs and seconds to the target, final and best loss, each member's training time) as
markdown tables, and the mean train_loss curves against the epoch and against the seconds.

Problems:
  sine      1-10-1 tanh fitting sin on [-π, π] (100 points): MATLAB's classic demo
  teacher   the classic 64-128-10 MLP (ReLU) on a regression: 256 rows of 64 normal features,
            10 targets from a fixed random 64-16-10 tanh network
  iris      4-10-3 tanh on iris (standardized), mse on one-hot targets (trainlm's setting)

The rates are the usual ones, not tuned here (the first-order ones as in bench/optimizer_study.py);
L-BFGS takes one iteration per step (max_iter 1) so that every method's step is one update.

    .venv/bin/python bench/convergence.py                      # writes docs/convergence.md and PNGs
    .venv/bin/python bench/convergence.py --problems sine --epochs 5 --seeds 1 --out /tmp/conv
"""
import argparse
import io
import math
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import DEPLOYMENTS, deployment  # noqa: E402
from bench._study_report import figure, leaderboard_table, plot_curves  # noqa: E402
from bench.optimizer_study import load_average, machine, submit_and_wait  # noqa: E402

OPTIMIZERS = [
    ("gd", {"type": "sgd", "lr": 0.01}),
    ("momentum", {"type": "sgd", "lr": 0.01, "momentum": 0.9}),
    ("nesterov", {"type": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True}),
    ("rprop", {"type": "rprop"}),
    ("rmsprop", {"type": "rmsprop", "lr": 0.001}),
    ("adagrad", {"type": "adagrad", "lr": 0.01}),
    ("adadelta", {"type": "adadelta", "lr": 1.0}),
    ("adam", {"type": "adam", "lr": 0.001}),
    ("lbfgs", {"type": "lbfgs", "max_iter": 1, "line_search_fn": "strong_wolfe"}),
    ("cg", {"type": "conjugate_gradient"}),
    ("scg", {"type": "scaled_conjugate_gradient"}),
    ("lm", {"type": "levenberg_marquardt"}),
    ("newton", {"type": "newton"}),
]
SECOND_ORDER = ("lm", "newton")


def tanh_net(hidden: int, outputs: int) -> dict:
    return {"layers": [{"type": "linear", "out_features": hidden}, {"type": "tanh"},
                       {"type": "linear", "out_features": outputs}]}


def sine_data() -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(-math.pi, math.pi, 100, dtype=np.float32)[:, None]
    return x, np.sin(x[:, 0]).astype(np.float32)


def teacher_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 64)).astype(np.float32)
    w1, w2 = rng.normal(size=(64, 16)) / 8, rng.normal(size=(16, 10))
    return x, (np.tanh(x @ w1) @ w2).astype(np.float32)


# name -> (title, data (None: builtin), model, data options, target train_loss, epochs of the
# second-order variants (None: the problem's epochs), most seeds). Targets chosen from pilot runs:
# plain GD at its usual rate does not get there in the epochs given. The teacher problem's LM and
# Newton steps cost about 20 s each on a 2-core machine (9,610 parameters: a 9,610² Cholesky), so
# they run 15 epochs and the problem one seed.
PROBLEMS = {
    "sine": ("1-10-1 tanh fitting sin on [-π, π], 100 points", sine_data, tanh_net(10, 1), {}, 1e-3, None, None),
    "teacher": ("64-128-10 ReLU MLP on a 10-target regression, 256 rows", teacher_data,
                {"layers": [{"type": "linear", "out_features": 128}, {"type": "relu"},
                            {"type": "linear", "out_features": 10}]}, {}, 1e-3, 15, 1),
    "iris": ("4-10-3 tanh on iris (150 rows, standardized), mse on one-hot targets", None, tanh_net(10, 3),
             {"standardize": True, "targets": "one_hot"}, 0.02, None, None),
}


def upload(api, x: np.ndarray, y: np.ndarray, name: str) -> str:
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    r = api.post("/v1/datasets", files={"file": (f"{name}.npz", buf.getvalue())})
    r.raise_for_status()
    return r.json()["id"]


def study_request(problem: str, dataset: str, *, epochs: int, seeds: list[int]) -> dict:
    title, _, model, data, target, second_epochs, most_seeds = PROBLEMS[problem]
    seeds = seeds[:most_seeds] if most_seeds else seeds
    base = {"dataset": dataset, "model": model, "loss": {"type": "mse"}, "optimizer": OPTIMIZERS[0][1],
            "data": data, "training": {"epochs": epochs, "batch_size": "full"}}
    variants = []
    for label, opt in OPTIMIZERS:
        changes = {"optimizer": opt}
        if label in SECOND_ORDER and second_epochs is not None and second_epochs < epochs:
            changes["training.epochs"] = second_epochs  # each of their steps costs seconds here
        variants.append({"label": label, "set": changes})
    return {"name": f"convergence: {problem}", "base": base, "variants": variants, "seeds": seeds,
            "objective": {"metric": "train_loss", "mode": "min", "target": target}, "parallel": 1}


def run_study(api, body: dict, timeout: float) -> tuple[dict, dict, dict, float]:
    """Submits and waits: (study, train_loss curves by epoch, by seconds, wall seconds)."""
    study, wall = submit_and_wait(api, body, timeout)
    curves = {x: api.get(f"/v1/studies/{study['id']}/curves", params={"metric": "train_loss", "x": x}).json()
              for x in ("epoch", "seconds")}
    return study, curves["epoch"], curves["seconds"], wall


def step_costs(api, study: dict) -> list[str]:
    """Seconds per epoch (one step each) per variant: the member's training time over its epochs."""
    lines = ["| variant | s per step (mean over members) | epochs run |", "| --- | ---: | ---: |"]
    per: dict[str, list[tuple[float, int]]] = {}
    for m in study["members"]:
        job = api.get(f"/v1/jobs/{m['job_id']}").json()
        epochs = job["progress"]["epoch"]
        seconds = sum(p["epoch_seconds"] or 0 for p in api.get(f"/v1/jobs/{m['job_id']}/metrics").json()["epochs"])
        per.setdefault(m["variant"], []).append((seconds / max(epochs, 1), epochs))
    for label, _ in OPTIMIZERS:
        if label in per:
            runs = per[label]
            lines.append(f"| {label} | {figure(sum(s for s, _ in runs) / len(runs))} | {runs[0][1]} |")
    return lines


def section(problem: str, study: dict, costs: list[str], wall: float, png: str) -> list[str]:
    title, *_ = PROBLEMS[problem]
    board = study["leaderboard"]
    return [f"## {problem}: {title}", "",
            f"Target train_loss <= {board['objective']['target']}; {study['planned']} members; the study took "
            f"{wall:.0f} s. **{board['summary']}.**", "",
            *leaderboard_table(study, dict(OPTIMIZERS), metric="train_loss"), "",
            f"![train_loss against the epoch and the seconds]({png})", "",
            "Cost of a step (full batch, so one step per epoch):", "", *costs, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated: " + ", ".join(PROBLEMS))
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N per optimizer")
    parser.add_argument("--deployment", default="embedded", choices=DEPLOYMENTS)
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for convergence.md and its PNGs")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds each study may take")
    args = parser.parse_args()
    problems = args.problems.split(",")
    where, when, before = machine(), datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), load_average()
    sections, requests = [], []
    (args.out / "convergence").mkdir(parents=True, exist_ok=True)
    with deployment(args.deployment) as stack:
        with stack.client(stack.new_key("bench-convergence")) as api:
            api.timeout = 120
            for problem in problems:
                make = PROBLEMS[problem][1]
                dataset = "iris" if make is None else upload(api, *make(), problem)
                body = study_request(problem, dataset, epochs=args.epochs, seeds=list(range(1, args.seeds + 1)))
                study, by_epoch, by_seconds, wall = run_study(api, body, args.timeout)
                png = f"convergence/{problem}.png"
                plot_pair(by_epoch, by_seconds, args.out / png, title=PROBLEMS[problem][0])
                sections.append(section(problem, study, step_costs(api, study), wall, png))
                requests.append(body)
                print(f"{problem}: {study['leaderboard']['summary']} ({wall:.0f} s)")
    command = ".venv/bin/python bench/convergence.py " + " ".join(sys.argv[1:])
    (args.out / "convergence.md").write_text(report(sections, requests, command.strip(), when, where,
                                                    (before, load_average())))
    print(f"wrote {args.out / 'convergence.md'}")


def plot_pair(by_epoch: dict, by_seconds: dict, path: Path, *, title: str) -> None:
    """Two PNGs side by side would be two files; one figure with both panels keeps them together."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), dpi=110)
    for ax, curves in zip(axes, (by_epoch, by_seconds)):
        plot_curves(curves, None, title=title, ax=ax)
        if curves["x"] == "seconds":
            ax.set_xscale("log")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(sections: list[list[str]], requests: list[dict], command: str, when: str, where: str,
           loads: tuple[str, str]) -> str:
    import json

    head = ["# Convergence: thirteen optimizers, first-order to second-order", "",
            "Written by `bench/convergence.py` from one study per problem run through the API "
            "(`POST /v1/studies`), not edited by hand: the leaderboards are `GET /v1/studies/{id}`'s, the "
            "curves `GET /v1/studies/{id}/curves`' (train_loss; mean with min-max over the seeds), the step "
            "costs the members' own epoch_seconds. Every method trains full-batch on the mse loss; "
            "docs/optimizers.md says what each one does and costs.", "",
            "What to read: *epochs to target* counts updates (one per epoch here); *s to target* counts "
            "what they cost on this machine. A Newton or Levenberg-Marquardt step costs a Hessian or a "
            "Jacobian and a Cholesky solve, growing with the square (memory) and the cube (time) of the "
            "parameters: they win on the small networks and lose on the 9,610-parameter one.", ""]
    rerun = ["## How to run it again", "", "```sh", command, "```", "",
             f"Run {when} on {where}; load average {loads[0]} before, {loads[1]} after. The losses are the "
             "same on every run (CPU training is deterministic); the seconds move with the machine's load.", "",
             "The requests:", ""]
    for body in requests:
        rerun += ["```json", json.dumps(body, indent=1), "```", ""]
    return "\n".join([*head, *[line for s in sections for line in s], *rerun])


if __name__ == "__main__":
    main()
