"""Significance-aware stopping replayed on the calibration's recorded trials: trial time saved,
and validation accuracy lost, against the same trials run to the end.

    python -m benchmarks.stopping          # -> benchmarks/results/stopping.json
    python -m benchmarks.stopping paired   # the same sweeps run both ways (~40 min): "paired"

Each calibration cell recorded 18 complete trials (6 strategies x 3 LRs) with their learning
curves (validation accuracy at every evaluation) and wall times. A replay runs them as a sweep
would: in a random order (20 orders per cell), two at a time, each evaluation taking its trial's
wall time / evaluations, every evaluation fed to the real NoiseStopper in time order; a trial it
stops ends there, and once it ends the sweep nothing more starts. The winner is the trial with
the best best-so-far at its end. Validation accuracy, not test: the calibration kept no test
readings per trial, so the points lost are the winner's validation accuracy against the
full sweep's winner's (the same validation examples).
"""
from __future__ import annotations

import heapq
import json
import random
import statistics
import sys

from benchmarks.common import RESULTS, save
from ptft_ray.finetune.stopping import NoiseStopper

FILES = ["calibration.json", "calibration_heldout.json", "calibration_hf_encoder.json",
         "calibration_hf_encoder_heldout.json"]
ORDERS, SLOTS = 20, 2


def replay(trials: list[dict], n_val: int, order: list[int], stop: bool) -> tuple[float, float]:
    """-> (trial seconds spent, the winner's best validation accuracy)."""
    st = NoiseStopper("val_accuracy", "max", n_val, max(len(t["curve"]) for t in trials), len(trials)) if stop else None
    queue, events, spent, best = list(order), [], 0.0, {}
    clock = 0.0

    def start(i: int, now: float) -> None:
        per = trials[i]["wall_s"] / len(trials[i]["curve"])
        heapq.heappush(events, (now + per, i, 0, per))

    for _ in range(SLOTS):
        if queue:
            start(queue.pop(0), clock)
    ended_all = False
    while events:
        clock, i, k, per = heapq.heappop(events)
        spent += per
        v = trials[i]["curve"][k][1]
        best[i] = max(best.get(i, -1.0), v)
        halted = bool(st and st(str(i), {"val_accuracy": v}))
        if st and len(trials[i]["curve"]) != st.max_t and k + 1 == len(trials[i]["curve"]):
            st.complete(str(i))  # a shorter trial (fewer evaluations) completed
        if st and not ended_all and st.stop_all():
            ended_all, queue = True, []
            spent += sum(clock - (t - p) for t, _, _, p in events)  # running trials end now
            events = []
            break
        if k + 1 < len(trials[i]["curve"]) and not halted:
            heapq.heappush(events, (clock + per, i, k + 1, per))
        elif queue:
            start(queue.pop(0), clock)
    return spent, max(best.values())


def saved_and_lost(trials: list[dict], n_val: int, order: list[int]) -> tuple[float, float]:
    """-> (share of trial time the stopper saves, the winner's validation points lost)."""
    full_s, full_best = replay(trials, n_val, order, stop=False)
    s, b = replay(trials, n_val, order, stop=True)
    return 1 - s / full_s, 100 * (full_best - b)


def grid_orders(trials: list[dict]) -> dict[str, list[int]]:
    """The calibration grid's launch orders: "old" strategy by strategy, LR upward; "new" the
    sweep's own (finetune/space.grid_order)."""
    from benchmarks.calibrate import STRATEGIES
    from ptft_ray.finetune.space import grid_order
    from ptft_ray.schema import SweepConfig

    old = sorted(range(len(trials)), key=lambda i: (STRATEGIES.index(trials[i]["strategy"]), trials[i]["lr"]))
    strategies = [s for s in STRATEGIES if any(t["strategy"] == s for t in trials)]
    points = {(trials[i]["strategy"], sum(trials[j]["strategy"] == trials[i]["strategy"] for j in old[:k])): i
              for k, i in enumerate(old)}  # (strategy, LR point counted upward) -> trial
    cells = grid_order(SweepConfig(strategies=strategies, grid_points=max(p for _, p in points) + 1))
    return {"old": old, "new": [points[c] for c in cells if c in points]}


def cells() -> list[tuple[str, list[dict], int]]:
    out = []
    for f in FILES:
        path = RESULTS / f
        if not path.is_file():
            continue
        for name, cell in json.loads(path.read_text())["cells"].items():
            trials = [t for t in cell["exhaustive"]["trials"] if t["stop_reason"] == "completed" and t.get("curve")]
            fam = "hf_encoder" if "hf_encoder" in f else "gpt"
            out.append((f"{fam}:{name}", trials, cell["shape"]["finetune.max_val_examples"]))
    return out


def section(r: dict) -> list[str]:
    if not r:
        return []
    L = ["", "## Significance-aware stopping", "",
         f"Command: `{r['command']}`. The rule (finetune/stopping.py) replayed on each calibration cell's 18 "
         f"recorded trials, {r['orders_per_cell']} random orders, {r['slots']} at a time, against the same trials "
         "run to the end. Points lost: the winner's validation accuracy against the full sweep's winner's (the "
         "calibration kept no test reading per trial, so this is not a test-accuracy figure).", "",
         "| cell | n val | trial time saved (median, min) | validation points lost (median, max) | >= 30 % at <= 0.5 "
         "| in the grid's order, old -> new: saved, points lost |",
         "|---|---|---|---|---|---|"]
    for c in r["cells"]:
        ok = c["time_saved_median"] >= 0.3 and c["val_points_lost_median"] <= 0.5
        grid = (f"{c['grid_old'][0]:.0%}, {c['grid_old'][1]:.1f} -> {c['grid_new'][0]:.0%}, {c['grid_new'][1]:.1f}"
                if "grid_new" in c else "-")
        L.append(f"| {c['cell']} | {c['n_val']} | {c['time_saved_median']:.0%}, {c['time_saved_min']:.0%} | "
                 f"{c['val_points_lost_median']:.1f}, {c['val_points_lost_max']:.1f} | "
                 f"{'yes' if ok else 'no'} | {grid} |")
    if r.get("paired"):
        L += ["", "Paired on test rows (`python -m benchmarks.stopping paired`): MiniLM, the same 9-trial grid "
                  f"({', '.join(PAIRED_STRATEGIES)} x 3 LRs, the calibration's trial shapes, 2 at a time, the same "
                  "seed and trial order) run to the end and with `sweep.stop_on_noise`; each exported model tested "
                  "on the whole test split. The two runs of a cell ran one after the other, and the machine's "
                  "speed can drift between them (it did by 10-50 % on 2026-12-03's first rt:1000 pair), so "
                  "the saving is also given with each trial's steps priced at its seconds a step in the first "
                  "run.", "",
              "| cell | grid order | trial time, to the end | trial time, stopping (trials stopped) | saved | saved at "
              "the first run's rates | test accuracy, to the end | stopping | points lost | McNemar p | >= 30 % at <= 0.5 |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in r["paired"]:
            f, s = c["full"], c["stopped"]
            ok = c["saved_at_full_rates"] >= 0.3 and c["test_points_lost"] <= 0.5
            L.append(f"| {c['cell']} | {c.get('grid_order', OLD_GRID_ORDER)} | {f['trial_time_s']:.0f} s | "
                     f"{s['trial_time_s']:.0f} s ({s.get('trials_stopped', '-')} of {s['trials_run']}) | {c['saved']:.0%} | {c['saved_at_full_rates']:.0%} | "
                     f"{f['test_accuracy']:.4f} | {s['test_accuracy']:.4f} | {c['test_points_lost']:+.1f} | "
                     f"{c['mcnemar']['p_value']:.2g} | {'yes' if ok else 'no'} |")
    return L


# paired: MiniLM, 3 strategies x 3 LRs (the calibrated space's first three), the calibration's
# trial shapes, 2 trials at a time, the same seed and trial order with the stopper on and off
PAIRED_CELLS = ["rt:100:short", "rt:1000:short"]
PAIRED_STRATEGIES = ["full", "linear_probe", "partial"]
# finetune/space.grid_order since 2026-12-03; rows run before it ran each strategy's LRs upward in turn
GRID_ORDER, OLD_GRID_ORDER = "each strategy at its top LR, then lower", "strategy by strategy, LR upward"


def paired_cell(cell: str) -> dict:
    """The same 9-trial grid run to the end and with sweep.stop_on_noise; trial time and the
    exported models' test accuracy side by side, McNemar on the same test rows."""
    from benchmarks.calibrate import FAMILY_LR_RANGES, run_cell
    from benchmarks.common import ROOT
    from ptft_ray.finetune.stats import paired

    root, out = ROOT / "runs" / "stopping_paired", {"cell": cell, "grid_order": GRID_ORDER}
    space = {"exhaustive": (PAIRED_STRATEGIES, FAMILY_LR_RANGES["hf_encoder"], 3)}
    for way, stop in (("full", False), ("stopped", True)):
        r = run_cell(cell, str(ROOT / "data" / "models" / "minilm"), root / way, space, ("exhaustive",),
                     extra={"sweep.stop_on_noise": stop})["exhaustive"]
        res = json.loads((sweep_dir(root, way, cell) / "result.json").read_text())
        out[way] = {"trial_time_s": round(r["trial_time_s"], 1), "wall_s": round(r["wall_s"], 1),
                    "test_accuracy": r["test_accuracy"], "best_config": r["best_config"],
                    "trials_run": sum(t["steps"] > 0 for t in r["trials"]),
                    "trials_stopped": len(res.get("stopping", {}).get("trials_stopped", []))}
    ev = [json.loads((sweep_dir(root, way, cell) / "evaluation.json").read_text()) for way in ("full", "stopped")]
    out["saved"] = round(1 - out["stopped"]["trial_time_s"] / out["full"]["trial_time_s"], 3)
    out["saved_at_full_rates"] = round(saved_at_full_rates(root, cell), 3)
    out["test_points_lost"] = round(100 * (out["full"]["test_accuracy"] - out["stopped"]["test_accuracy"]), 2)
    out["mcnemar"] = paired(ev[1], ev[0])
    return out


def sweep_dir(root, way: str, cell: str):
    """Where calibrate.run_cell put the cell's sweep run `way` (full | stopped)."""
    return root / way / cell.replace(":", "_") / "exhaustive"


def previous() -> dict:
    """results/stopping.json as it stands: the replay and the paired runs are written apart."""
    prev = RESULTS / "stopping.json"
    return json.loads(prev.read_text()) if prev.is_file() else {}


def saved_at_full_rates(root, cell: str) -> float:
    """Trial time saved with each trial's steps priced at its own seconds a step in the run to
    the end (the same strategy and LR): the machine's speed drifts between the two runs by more
    than the saving (rt:1000's completed trials ran 10-50 % slower in the second)."""
    import csv

    rows = {w: {(r["strategy"], r["lr"]): r for r in csv.DictReader(open(sweep_dir(root, w, cell) / "trials.csv"))}
            for w in ("full", "stopped")}
    full = sum(float(r["wall_s"]) for r in rows["full"].values())
    spent = sum(float(r["steps_trained"] or 0) * float(rows["full"][k]["wall_s"]) / float(rows["full"][k]["steps_trained"])
                for k, r in rows["stopped"].items())
    return 1 - spent / full


def paired_main(cells: list[str]) -> None:
    result = {k: v for k, v in previous().items() if k not in ("machine", "command")}
    new = {c: paired_cell(c) for c in cells}  # a cell run again replaces its row; the others stay
    rows = [new.pop(r["cell"], r) for r in result.get("paired", [])] + list(new.values())
    save("stopping", {**result, "paired": rows,
                      "paired_met": [r["cell"] for r in rows
                                     if r["saved_at_full_rates"] >= 0.3 and r["test_points_lost"] <= 0.5]})


def main() -> None:
    if sys.argv[1:2] == ["paired"]:
        paired_main(sys.argv[2:] or PAIRED_CELLS)
        return
    rows = []
    for name, trials, n_val in cells():
        saved, lost = zip(*(saved_and_lost(trials, n_val, random.Random(seed).sample(range(len(trials)), len(trials)))
                            for seed in range(ORDERS)))
        rows.append({"cell": name, "trials": len(trials), "n_val": n_val,
                     "time_saved_median": round(statistics.median(saved), 3),
                     "time_saved_min": round(min(saved), 3),
                     "val_points_lost_median": round(statistics.median(lost), 2),
                     "val_points_lost_max": round(max(lost), 2),
                     **{f"grid_{k}": [round(v, 3) for v in saved_and_lost(trials, n_val, order)]
                        for k, order in grid_orders(trials).items()}})
        print(rows[-1], flush=True)
    kept = {k: v for k, v in previous().items() if k in ("paired", "paired_met")}
    save("stopping", {**kept, "orders_per_cell": ORDERS, "slots": SLOTS, "cells": rows,
                      "met": [r["cell"] for r in rows
                              if r["time_saved_median"] >= 0.3 and r["val_points_lost_median"] <= 0.5]})


if __name__ == "__main__":
    main()
