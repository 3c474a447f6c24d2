"""What the study benches write: a study's leaderboard as a markdown table, and its curves as a figure.

Both take the API's answers as they come (GET /v1/studies/{id}, GET /v1/studies/{id}/curves)
and compute nothing of their own beyond formatting.
"""
import json
from pathlib import Path


def figure(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def mean_std(stat: dict) -> str:
    """'0.041 ± 0.003' (the stat's mean and sample std), '0.041' for one value, '-' for none."""
    if not stat["n"]:
        return "-"
    return figure(stat["mean"]) if stat["std"] is None else f"{figure(stat['mean'])} ± {figure(stat['std'])}"


def _options(spec: dict) -> str:
    """An optimizer spec in a table cell: `sgd lr=0.01 momentum=0.9`."""
    parts = [spec["type"], *(f"{k}={json.dumps(v)}" for k, v in spec.items() if k != "type")]
    return f"`{' '.join(parts)}`"


def leaderboard_table(study: dict, specs: dict[str, dict], metric: str = "val_loss") -> list[str]:
    """The leaderboard's rows as markdown lines, in the service's rank order."""
    lines = [f"| rank | variant | optimizer | final {metric} | best | target reached | epochs to target | "
             "s to target | AUC | wall s |",
             "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in study["leaderboard"]["rows"]:
        target = row["to_target"]
        reached = f"{target['reached']}/{target['n']}" if target else "-"
        epochs = mean_std(target["epochs"]) if target else "-"
        seconds = mean_std(target["seconds"]) if target else "-"
        spec = _options(specs[row["variant"]]) if row["variant"] in specs else ""
        lines.append(f"| {row['rank'] or '-'} | {row['variant']} | {spec} | {mean_std(row['final'])} | "
                     f"{figure(row['best']['min'])} | {reached} | {epochs} | {seconds} | "
                     f"{mean_std(row['auc'])} | {mean_std(row['wall_seconds'])} |")
    return lines


def readings(study: dict, *, rise: float = 1.2) -> list[str]:
    """Facts read off the leaderboard, as bullet lines: who never reached the target, who reached it
    soonest, and who ended well above its own best (its curve turned back up: overfitting)."""
    rows = [r for r in study["leaderboard"]["rows"] if r["final"]["n"]]
    lines = []
    target = study["leaderboard"]["objective"]["target"]
    if target is not None:
        never = [r["variant"] for r in rows if r["to_target"]["reached"] == 0]
        reached = [r for r in rows if r["to_target"]["reached"]]
        if never:
            lines.append(f"- never reached the target ({target}) on any seed: {', '.join(never)}")
        if reached:
            soonest = min(reached, key=lambda r: (r["to_target"]["epochs"]["mean"], r["variant"]))
            lines.append(f"- reached it soonest: {soonest['variant']}, at epoch "
                         f"{figure(soonest['to_target']['epochs']['mean'])} on average over "
                         f"{soonest['to_target']['reached']} of {soonest['to_target']['n']} seeds")
    for r in rows:
        if r["best"]["mean"] and r["final"]["mean"] > rise * r["best"]["mean"]:
            lines.append(f"- {r['variant']} ended {r['final']['mean'] / r['best']['mean']:.1f}x above its best "
                         f"(final {figure(r['final']['mean'])}, best {figure(r['best']['mean'])}, means over "
                         "the seeds): its val_loss turned back up")
    return lines


def per_seed_table(curves: dict) -> list[str]:
    """Each member's last value by variant (rows) and seed (columns), with its rank among the
    variants on that seed in brackets (1: the lowest), and each variant's mean rank.

    Members of one seed share what the seed draws, so this compares like with like where the
    leaderboard's spread mixes the seeds. Reads the curves' per-member columns (members=true).
    """
    last = {(v["variant"], m["seed"]): m["y"][-1] for v in curves["variants"] for m in v["members"] if m["y"]}
    seeds = sorted({seed for _, seed in last})
    variants = [v["variant"] for v in curves["variants"]]
    rank = {}
    for seed in seeds:
        order = sorted((value, variant) for (variant, s), value in last.items() if s == seed)
        rank.update({(variant, seed): i for i, (_, variant) in enumerate(order, start=1)})
    lines = ["| variant | " + " | ".join(f"seed {s}" for s in seeds) + " | mean rank |",
             "| --- | " + " | ".join("---:" for _ in seeds) + " | ---: |"]
    for variant in sorted(variants, key=lambda v: _mean_rank(rank, v)):
        cells = [f"{figure(last[variant, s])} ({rank[variant, s]})" if (variant, s) in last else "-" for s in seeds]
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {figure(_mean_rank(rank, variant), 2)} |")
    return lines


def _mean_rank(rank: dict, variant: str) -> float:
    ranks = [r for (v, _), r in rank.items() if v == variant]
    return sum(ranks) / len(ranks) if ranks else float("inf")


def plot_curves(curves: dict, path: Path | None, *, title: str, ax=None) -> None:
    """Each variant's mean against x, with its min-max band, log-y; saved as a PNG (or drawn on
    ``ax``, a panel of a caller's figure, when path is None)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the figure goes to a file
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    colors = plt.get_cmap("tab20" if len(curves["variants"]) > 10 else "tab10").colors
    for i, variant in enumerate(curves["variants"]):
        color = colors[i % len(colors)]
        # Dashed every other line: two variants that train alike (momentum, Nesterov) stay visible.
        style = "-" if i % 2 == 0 else "--"
        ax.plot(variant["x"], variant["mean"], style, color=color, label=variant["variant"], linewidth=1.6)
        ax.fill_between(variant["x"], variant["min"], variant["max"], color=color, alpha=0.08, linewidth=0)
    ax.set_yscale("log")
    ax.set_xlabel("epoch" if curves["x"] == "epoch" else curves["x"])
    ax.set_ylabel(curves["metric"])
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(ncol=2, fontsize=9)
    if fig is not None:
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
