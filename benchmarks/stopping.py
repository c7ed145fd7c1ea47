"""Significance-aware stopping replayed on the calibration's recorded trials: trial time saved,
and validation accuracy lost, against the same trials run to the end.

    python -m benchmarks.stopping      # -> benchmarks/results/stopping.json

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
         "| cell | n val | trial time saved (median, min) | validation points lost (median, max) | >= 30 % at <= 0.5 |",
         "|---|---|---|---|---|"]
    for c in r["cells"]:
        ok = c["time_saved_median"] >= 0.3 and c["val_points_lost_median"] <= 0.5
        L.append(f"| {c['cell']} | {c['n_val']} | {c['time_saved_median']:.0%}, {c['time_saved_min']:.0%} | "
                 f"{c['val_points_lost_median']:.1f}, {c['val_points_lost_max']:.1f} | {'yes' if ok else 'no'} |")
    return L


def main() -> None:
    rows = []
    for name, trials, n_val in cells():
        saved, lost = [], []
        for seed in range(ORDERS):
            order = random.Random(seed).sample(range(len(trials)), len(trials))
            full_s, full_best = replay(trials, n_val, order, stop=False)
            s, b = replay(trials, n_val, order, stop=True)
            saved.append(1 - s / full_s)
            lost.append(100 * (full_best - b))
        rows.append({"cell": name, "trials": len(trials), "n_val": n_val,
                     "time_saved_median": round(statistics.median(saved), 3),
                     "time_saved_min": round(min(saved), 3),
                     "val_points_lost_median": round(statistics.median(lost), 2),
                     "val_points_lost_max": round(max(lost), 2)})
        print(rows[-1], flush=True)
    save("stopping", {"orders_per_cell": ORDERS, "slots": SLOTS, "cells": rows,
                      "met": [r["cell"] for r in rows
                              if r["time_saved_median"] >= 0.3 and r["val_points_lost_median"] <= 0.5]})


if __name__ == "__main__":
    main()
