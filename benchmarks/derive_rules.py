"""Derive the planner's rules from the calibration table.

    .venv/bin/python benchmarks/derive_rules.py   # reads benchmarks/results/calibration.json
writes ptft_ray/planner/calibrated.json (read by ptft_ray/planner/families.py) and
benchmarks/results/calibration.md (the table, per cell: every strategy's best val accuracy).

    .venv/bin/python benchmarks/derive_rules.py --family hf_encoder
reads benchmarks/results/calibration_hf_encoder.json and writes the same rules under
calibrated.json's families.hf_encoder (the rest of the file is kept), with the table in
benchmarks/results/calibration_hf_encoder.md. Its throughput is the one the planner measures
live for a model without pretraining history (planner/throughput.py), recorded at calibration.

Rules, per calibrated data size (pooling both tasks):
- per task type (binary / multi-class) and pooled:
- ranking: strategies by their mean gap to the cell's best validation accuracy;
- within_1pt: every strategy within 1 point of the best in at least one cell;
- lr_ranges: the winning grid LR(s) of each strategy, widened by half a grid step each side
  but never past the grid's own edges (nothing was measured there: the planned tweets sweeps'
  draws above the grid's top LR, 3e-3, did worse than those below it);
- levels: 'long' is offered only where the long budget beat the short one by > 1 point;
- cost_model: least squares of trial wall time on train and eval tokens / measured rate,
  over the calibration trials and the planned sweeps added with --add-sweeps (kept in
  benchmarks/results/cost_trials_<family>.json): one calibration cell has one shape, so it
  cannot tell start-up, training and evaluation apart;
- asha: grace period (share of a trial) and reduction factor, by replaying successive halving
  on the exhaustive trials' curves: the cheapest setting within 1 point in every cell.
"""
from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rate_of(ckpt: str) -> float:
    from ptft_ray.finetune.backbones import _throughput
    from ptft_ray.train.checkpoint import read_meta

    return _throughput(read_meta(ckpt))


def best_by_strategy(trials: list[dict]) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for t in trials:
        if t["val"] is not None and (t["strategy"] not in out or t["val"] > out[t["strategy"]][0]):
            out[t["strategy"]] = (t["val"], t["lr"])
    return out


def nonneg_lstsq(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with coefficients >= 0 (no strategy costs negative time): refit without
    the most negative coefficient until none is negative."""
    free = list(range(a.shape[1]))
    while True:
        coef = np.zeros(a.shape[1])
        coef[free] = np.linalg.lstsq(a[:, free], y, rcond=None)[0]
        if coef.min() >= 0:
            return coef
        free.remove(int(np.argmin(coef)))


def calibration_rows(cells: dict, rate: float) -> list[dict]:
    """One row per completed calibration trial: its strategy, train and eval tokens (the
    planner's arithmetic in rules.trial_seconds: padded to max_len) over the measured rate,
    and its wall time."""
    from ptft_ray.planner.rules import trial_tokens

    rows = []
    for c in cells.values():
        sh, n_val = c["shape"], min(c["scan"]["examples"]["val"], c["shape"]["finetune.max_val_examples"])
        for t in c["exhaustive"]["trials"] + c.get("scratch", {}).get("trials", []):
            if t["stop_reason"] == "completed":
                train, ev = trial_tokens(sh, t["steps"], n_val)
                rows.append({"run": c["cell"], "strategy": t["strategy"], "train_tokens": train,
                             "eval_tokens": ev, "rate": rate, "wall_s": t["wall_s"]})
    return rows


def sweep_rows(run_dir: Path) -> list[dict]:
    """The same rows from a planned sweep's run directory (plan.json + trials.csv): trials at
    other data sizes, batches and epochs than the calibration cells, each over the rate the
    plan measured for it. A calibration at one shape cannot tell start-up, training and
    evaluation apart (all three grow together); these can."""
    import csv

    from ptft_ray.planner.rules import trial_tokens

    plan = json.loads((run_dir / "plan.json").read_text())
    sh, rate = plan["shape"], plan["cost_model"]["rate_tokens_per_s"]
    n_val = min(plan["scan"]["examples"]["val"], sh["finetune.max_val_examples"])
    rows = []
    with open(run_dir / "trials.csv") as f:
        for t in csv.DictReader(f):
            if t["stop_reason"] == "completed":
                train, ev = trial_tokens({**sh, "sweep.batch_sizes": [int(t["batch_size"])]},
                                         int(t["steps_trained"]), n_val, float(t["epochs"]))
                rows.append({"run": f"{run_dir.parent.name}/{run_dir.name}", "strategy": t["strategy"],
                             "train_tokens": train, "eval_tokens": ev, "rate": rate, "wall_s": float(t["wall_s"])})
    return rows


def fit_cost(rows: list[dict]) -> dict:
    """wall_s = a + b_strategy * train_tokens / rate + c * eval_tokens / rate, least squares."""
    strategies = sorted({r["strategy"] for r in rows})
    a = np.array([[1.0] + [r["train_tokens"] / r["rate"] if r["strategy"] == s else 0.0 for s in strategies]
                  + [r["eval_tokens"] / r["rate"]] for r in rows])
    ys = np.array([r["wall_s"] for r in rows])
    coef = nonneg_lstsq(a, ys)
    err = np.abs(a @ coef - ys) / ys
    return {"startup_s": round(float(coef[0]), 2),
            "train": {s: round(float(v), 3) for s, v in zip(strategies, coef[1:-1])},
            "eval": round(float(coef[-1]), 3), "median_relative_error": round(float(np.median(err)), 3),
            "max_relative_error": round(float(err.max()), 3), "trials": len(ys),
            "runs": sorted({r["run"] for r in rows})}


def replay_sha(trials: list[dict], grace: int, eta: int) -> tuple[float, float]:
    """Successive halving replayed on completed trials' validation curves: every trial runs
    to `grace` evaluations, the top 1/eta by validation accuracy there go on to grace*eta, ...
    -> (best validation accuracy any trial reached while it ran, share of the evaluations run)."""
    curves = [[v for _, v in t["curve"]] for t in trials if t["curve"]]
    T = max(len(c) for c in curves)
    alive, ran, r = list(range(len(curves))), [0] * len(curves), grace
    while True:
        r = min(r, T)
        for i in alive:
            ran[i] = min(r, len(curves[i]))
        if r >= T:
            break
        alive = sorted(alive, key=lambda i: -curves[i][ran[i] - 1])[:math.ceil(len(alive) / eta)]
        r *= eta
    best = max(max(c[:k]) for c, k in zip(curves, ran) if k)
    return best, sum(ran) / (len(curves) * T)


GRACE_FRACTIONS = (0.125, 0.25, 0.375, 0.5)


def asha_rule(cells: dict) -> dict:
    """The cheapest (grace as a fraction of a trial, reduction factor) whose replay on every
    calibration cell's exhaustive trials lost at most 1 point of best validation accuracy."""
    table = []
    for eta in (2, 3):
        for f in GRACE_FRACTIONS:
            regrets, fracs = {}, []
            for name, c in sorted(cells.items()):
                tr = c["exhaustive"]["trials"]
                T = max(len(t["curve"]) for t in tr)
                best, frac = replay_sha(tr, max(1, round(f * T)), eta)
                regrets[name] = round(100 * (max(max(v for _, v in t["curve"]) for t in tr if t["curve"]) - best), 2)
                fracs.append(frac)
            table.append({"grace_fraction": f, "reduction_factor": eta, "max_regret_points": max(regrets.values()),
                          "mean_compute": round(float(np.mean(fracs)), 3), "regret_points": regrets})
    ok = [r for r in table if r["max_regret_points"] <= 1.0] or table
    pick = min(ok, key=lambda r: (r["mean_compute"], r["max_regret_points"]))
    return {"grace_fraction": pick["grace_fraction"], "reduction_factor": pick["reduction_factor"],
            "replay": table}


def rules_for(cs: list[dict], grid_ranges: dict) -> dict:
    """ranking by mean gap to each cell's best (short level); within_1pt: every strategy within
    1 point of the best in at least one cell; LR ranges around the winning grid LRs; 'long'
    offered where the long level beat the short one by > 1 point."""
    gaps, wins, near = defaultdict(list), defaultdict(list), set()
    for c in cs:
        best = best_by_strategy(c["exhaustive"]["trials"])
        top = max(v for v, _ in best.values())
        for s, (v, lr) in best.items():
            if c["level"] == "short":
                gaps[s].append(v - top)
                if v >= top - 0.01:
                    near.add(s)
            wins[s].append(lr)
    ranking = sorted(gaps, key=lambda s: -float(np.mean(gaps[s])))
    lr_ranges = {}
    for s, lrs in wins.items():
        lo_g, hi_g = grid_ranges[s]
        half = math.sqrt(math.sqrt(hi_g / lo_g))  # 3 log-spaced points: half the step between two
        lr_ranges[s] = [float(f"{max(lo_g, min(lrs) / half):.2e}"), float(f"{min(hi_g, max(lrs) * half):.2e}")]
    levels = ["short"]
    for t in {c["task"] for c in cs}:
        sh = [c for c in cs if c["task"] == t and c["level"] == "short"]
        lg = [c for c in cs if c["task"] == t and c["level"] == "long"]
        if sh and lg and lg[0]["exhaustive"]["best_val"] > sh[0]["exhaustive"]["best_val"] + 0.01:
            levels = ["short", "long"]
    return {"ranking": ranking, "mean_gap": {s: round(float(np.mean(g)), 4) for s, g in gaps.items()},
            "within_1pt": [s for s in ranking if s in near], "lr_ranges": lr_ranges, "levels": levels}


def swept_trials(family: str, add: list[str]) -> list[dict]:
    """The family's planned-sweep trials kept so far, plus those of `add` (a run directory
    added again replaces its rows)."""
    path = Path(f"benchmarks/results/cost_trials_{family}.json")
    kept = json.loads(path.read_text()) if path.is_file() else []
    new = [r for d in add for r in sweep_rows(Path(d))]
    rows = [r for r in kept if r["run"] not in {r["run"] for r in new}] + new
    if new:
        path.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="gpt")
    ap.add_argument("--add-sweeps", nargs="*", default=[], metavar="RUN_DIR",
                    help="planned sweeps of this family to add to its cost fit (kept in "
                         "benchmarks/results/cost_trials_<family>.json)")
    args = ap.parse_args()
    family = args.family
    from benchmarks.calibrate import family_suffix

    suffix = family_suffix(family)
    src = f"benchmarks/results/calibration{suffix}.json"
    cal = json.loads(Path(src).read_text())
    cells = cal["cells"]
    rate = rate_of(cal["pretrained"]) if family == "gpt" else cal["rate_tokens_per_s"]
    buckets: dict[str, dict] = {}
    by_size = defaultdict(list)
    for c in cells.values():
        by_size[str(10 ** round(math.log10(c["n_train"])))].append(c)  # 'all' (~10k) joins 10000
    md = ["| cell | n_train | " + " | ".join(["full", "linear_probe", "lora", "partial", "discriminative_lr",
                                               "gradual_unfreeze"]) + " | best test | scratch test |",
          "|" + "---|" * 10]
    for size, cs in sorted(by_size.items(), key=lambda kv: int(kv[0])):
        for c in cs:
            best = best_by_strategy(c["exhaustive"]["trials"])
            md.append(f"| {c['cell']} | {c['n_train']} | " + " | ".join(
                f"{best[s][0]:.3f} @ {best[s][1]:.0e}" if s in best else "-" for s in
                ["full", "linear_probe", "lora", "partial", "discriminative_lr", "gradual_unfreeze"])
                + f" | {c['exhaustive']['test_accuracy']:.3f} | "
                + (f"{c['scratch']['test_accuracy']:.3f} |" if "scratch" in c else "- |"))
        types = {}
        for ttype in sorted({c["scan"]["task_type"] for c in cs}):
            types[ttype] = rules_for([c for c in cs if c["scan"]["task_type"] == ttype], cal["lr_ranges"])
        pooled = rules_for(cs, cal["lr_ranges"])
        buckets[size] = {**pooled, "by_task_type": types, "tasks": sorted({c["task"] for c in cs})}
    flag = f" --family {family}" if suffix else ""
    out = {"source": src, "date": cal["date"], "pretrained": cal["pretrained"],
           "command": f"python benchmarks/calibrate.py{flag} && python benchmarks/derive_rules.py{flag}",
           "reference_rate": rate, "buckets": buckets,
           "cost_model": fit_cost(calibration_rows(cells, rate) + swept_trials(family, args.add_sweeps)),
           "asha": asha_rule(cells)}
    target = Path("ptft_ray/planner/calibrated.json")
    if family != "gpt":  # kept beside our GPT's rules
        whole = json.loads(target.read_text())
        whole.setdefault("families", {})[family] = out
        out = whole
    else:  # the other families' rules stay
        out["families"] = json.loads(target.read_text()).get("families", {}) if target.is_file() else {}
    target.write_text(json.dumps(out, indent=1) + "\n")
    Path(f"benchmarks/results/calibration{suffix}.md").write_text(
        "# Calibration: best validation accuracy per strategy (at its best grid LR)\n\n"
        f"{cal['date']}, `python benchmarks/calibrate.py{flag} && python benchmarks/derive_rules.py{flag}`; "
        f"pretrained checkpoint {cal['pretrained']}\n\n"
        + "\n".join(md) + "\n\nDerived rules: ptft_ray/planner/calibrated.json\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
