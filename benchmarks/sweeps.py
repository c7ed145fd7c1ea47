"""Items 5 and 6 of the benchmark issue, from real sweeps on the two real tasks (the
calibration's exhaustive sweeps are the reference; the planner's acceptance is in
planner_accept.py):
  5. sweep efficiency: ASHA over the same grid as a calibration cell run to completion:
     best val accuracy, total trial-steps and trial time; per-trial start-up seconds;
  6. pretraining pays: per task x size, test accuracy fine-tuned from the pretrained
     checkpoint vs from scratch (best of each sweep), and the steps the pretrained trials
     needed to reach the scratch model's final validation accuracy; learning-curve PNG;

    .venv/bin/python -m benchmarks.sweeps        (needs benchmarks/results/calibration.json)
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .common import RESULTS, ROOT, save

ASHA_CELL = "rt:1000:short"
PLANNER_CELLS = ["rt:100:short", "tweets:100:short", "rt:1000:short", "tweets:1000:short",
                 "rt:all:short", "tweets:10000:short"]


def _cfg(cell: dict, extra: dict):
    from benchmarks.calibrate import FIXED, LR_RANGES, TASKS, overrides
    from ptft_ray.config import load_config

    base = {**FIXED, "finetune.data": TASKS[cell["task"]], "finetune.max_examples": cell["n_train"],
            **cell["shape"], "sweep.lr_ranges": LR_RANGES, **extra}
    return load_config(None, overrides(base))


def _asha_run(cell: dict, ckpt: str, d: Path, grace: int, eta: int) -> dict:
    import csv

    from benchmarks.calibrate import STRATEGIES
    from ptft_ray.finetune.sweep import sweep

    if not (d / "result.json").is_file():
        sweep(_cfg(cell, {"sweep.strategies": STRATEGIES, "sweep.scheduler": "asha", "sweep.grace_period": grace,
                          "sweep.reduction_factor": eta}), [ckpt], str(d), overwrite=True)
    res = json.loads((d / "result.json").read_text())
    rows = list(csv.DictReader(open(d / "trials.csv")))
    return {"grace_period": grace, "reduction_factor": eta, "trials": len(rows), "best_val": res["best_metric"],
            "test_accuracy": res["test_accuracy"],
            "trial_steps": sum(int(float(r["steps_trained"] or 0)) for r in rows), "trial_time_s": res["trial_time_s"]}


def asha_vs_full(cal: dict, root: Path) -> dict:
    """ASHA vs the same grid run to completion: grace 1 of 7 evaluations (the planner's first,
    quarter-of-a-trial rule), grace 3 eta 3 (the rule derived from the file-order Rotten
    Tomatoes grids) and the rule derived now (derive_rules.asha_rule). Each setting's run lives
    in its own directory (asha_g{grace}_e{eta}), so a changed rule runs anew."""
    cell = cal["cells"][ASHA_CELL]
    rule = json.loads((ROOT / "ptft_ray" / "planner" / "calibrated.json").read_text())["asha"]
    max_t = max(len(t["curve"]) for t in cell["exhaustive"]["trials"])
    ex = cell["exhaustive"]
    now = (max(1, round(rule["grace_fraction"] * max_t)), rule["reduction_factor"])
    runs = {"grace 1 (first rule)": (1, 3), "grace 3 (rule from the file-order grids)": (3, 3),
            "calibrated now": now}
    return {"cell": ASHA_CELL, "trials": len(ex["trials"]), "max_t": max_t,
            "runs": {k: _asha_run(cell, cal["pretrained"], root / f"asha_g{g}_e{e}", g, e)
                     for k, (g, e) in runs.items()},
            "full": {"best_val": ex["best_val"], "test_accuracy": ex["test_accuracy"],
                     "trial_steps": sum(t["steps"] for t in ex["trials"]), "trial_time_s": ex["trial_time_s"]}}


def first_step_reaching(curves: list[list], target: float) -> int | None:
    hits = [s for c in curves for s, v in c if v >= target]
    return min(hits) if hits else None


# where the whole training split is too large for the 18-trial grid on 2 CPUs (tweets: ~50k):
# the grid's winner at 10,000 labels (strategy + LR) from the checkpoint vs scratch full
# fine-tuning at its own best 10,000-label LR, both trained on every label
ALL_LABELS = {"tweets:all:short": "tweets:10000:short"}


def all_labels(cal: dict, root: Path) -> dict:
    from benchmarks.calibrate import run_cell

    cells = {}
    for name, ref in ALL_LABELS.items():
        if ref not in cal["cells"]:
            continue
        r = cal["cells"][ref]
        best = r["exhaustive"]["best_config"]
        sc_lr = max(r["scratch"]["trials"], key=lambda t: t["val"] or -1)["lr"]

        def one(s: str, lr: float):  # a one-point grid at exactly this LR
            return [s], {s: [lr / 1.001, lr * 1.001]}, 1
        cells[name] = run_cell(name, cal["pretrained"], root / "all_labels",
                               {"exhaustive": one(best["strategy"], best["lr"]), "scratch": one("full", sc_lr)})
    return cells


def pretraining_pays(cells: dict, root: Path) -> list[dict]:
    """Test accuracy of each side's best trial, chosen by the sweeps' selection rule (top 3
    re-scored on the whole validation split; planner_accept.reselect), and as first
    measured (best by the sweep's validation subset alone)."""
    from benchmarks.planner_accept import reselect

    rows = []
    for name, c in sorted(cells.items()):
        ex, sc = c["exhaustive"], c["scratch"]
        where = root / "all_labels" if name in ALL_LABELS else None
        pre_t, scr_t = (reselect(name, c, k, where)["test"] for k in ("exhaustive", "scratch"))
        scratch_final = max(t["val"] for t in sc["trials"] if t["val"] is not None)
        best_sc = max(sc["trials"], key=lambda t: t["val"] or -1)
        rows.append({"cell": name, "task": c["task"], "n_train": c["n_train"], "level": c["level"],
                     "pretrained_test": pre_t, "scratch_test": scr_t, "gain_points": 100 * (pre_t - scr_t),
                     "subset_selection": {"pretrained_test": ex["test_accuracy"], "scratch_test": sc["test_accuracy"],
                                          "gain_points": 100 * (ex["test_accuracy"] - sc["test_accuracy"])},
                     "scratch_best_val": scratch_final,
                     "scratch_steps_to_best": first_step_reaching([best_sc["curve"]], scratch_final),
                     "pretrained_steps_to_scratch_final": first_step_reaching(
                         [t["curve"] for t in ex["trials"]], scratch_final),
                     "max_steps": max(t["steps"] for t in ex["trials"])})
    return rows


def curves_png(cells: dict, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for _, c in sorted(cells.items()) if c["level"] == "short"]
    cols = 3
    fig, axes = plt.subplots(math.ceil(len(cells) / cols), cols, figsize=(12, 3.2 * math.ceil(len(cells) / cols)),
                             squeeze=False)
    for ax, c in zip(axes.flat, cells):
        for kind, color in (("exhaustive", "tab:blue"), ("scratch", "tab:red")):
            best = max(c[kind]["trials"], key=lambda t: t["val"] or -1)
            if best["curve"]:
                ax.plot(*zip(*best["curve"]), "o-", color=color, ms=3,
                        label=f"{'pretrained' if kind == 'exhaustive' else 'scratch'} ({best['strategy']})")
        ax.set_title(c["cell"]), ax.set_xlabel("step"), ax.set_ylabel("val accuracy"), ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(cells):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path.relative_to(ROOT))


def main() -> None:
    from ptft_ray.cluster import init_ray

    cal = json.loads((RESULTS / "calibration.json").read_text())
    root = ROOT / "runs" / "bench_sweeps"
    init_ray()
    cm = json.loads((ROOT / "ptft_ray" / "planner" / "calibrated.json").read_text())["cost_model"]
    # the earlier planners' one-seed acceptance rows stay as history (planner_accept.py now)
    prev = json.loads((RESULTS / "sweeps.json").read_text()) if (RESULTS / "sweeps.json").is_file() else {}
    cells = {**cal["cells"], **all_labels(cal, root)}
    save("sweeps", {
        "planner_history": prev.get("planner_history") or {
            "session 2 (grace a quarter of a trial, 4 LR draws per strategy)": prev.get("planner_vs_exhaustive_before"),
            "session 3 (calibrated ASHA grace, 8 LR draws per winner)": prev.get("planner_vs_exhaustive")},
        "sweep_efficiency": asha_vs_full(cal, root),
        "per_trial_startup_s": {"cost_model_intercept": cm["startup_s"],
                                "trial_overhead_json": json.loads((RESULTS / "trial_overhead.json").read_text())
                                .get("mean_trial_s_in_process")},
        "pretraining_pays": pretraining_pays(cells, root),
        "learning_curves_png": curves_png(cells, RESULTS / "learning_curves.png"),
        "goals": {"asha_within_points": 1, "asha_compute_fraction": 0.35}})


if __name__ == "__main__":
    main()
