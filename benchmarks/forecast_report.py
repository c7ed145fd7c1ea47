"""BENCHMARKS.md's forecast section, from results/forecast.json (`python -m benchmarks forecast`)."""
from __future__ import annotations

from benchmarks.forecast import run_cells


def section(r: dict) -> list[str]:
    """BENCHMARKS.md's forecast tables: held out from the fit, then the runs' own forecasts."""
    if not r:
        return []
    L = ["", "## The planner's forecast", "",
         f"Command: `{r['command']}` (fit: `python -m benchmarks.forecast fit`; the held-out runs: "
         "`python -m benchmarks.forecast held_out`). The forecast (planner/forecast.py) is fitted on the six "
         f"quality cells per model family and, for MiniLM, {len(run_cells())} planned 3- to 10-minute sweeps (news "
         "outlets, and sizes between the cells; then four tasks no calibration saw, each run before any fit held "
         "it: Commons party and news topics, runs/forecast_unseen/; Bundestag party (German) and 2016 debate "
         "sides, runs/forecast_unseen2/; then every set of cells run to check a fit, through runs/forecast_fresh2/, "
         "and runs/forecast_fresh5/ and runs/forecast_fresh6/ (fresh3 and fresh4's runs were not kept); "
         "results/forecast_runs.json), each with the probe a plan reads (TF-IDF + LR on the task's validation "
         "rows; docs/decisions.md, \"The forecast fitted on what a plan reads\"); each cell "
         "below is forecast by a fit without it (leave one cell out) or without its whole task (leave one task "
         "out), against the test accuracy its planned sweep realised. The 80 % interval is a conformal quantile "
         "of held-out errors (docs/decisions.md, \"The forecast's interval\"); each held-out cell's interval is "
         "built from the other cells alone.", "",
         "| family | held out | cells | 80 % interval covers | mean abs. error (points) | interval +/- (points) |",
         "|---|---|---|---|---|---|"]
    for key, t in r["held_out"].items():
        if isinstance(t, dict) and "cells" in t:
            fam, by = key.split(":")
            L.append(f"| {fam} | {by.replace('_', ' ')} | {len(t['cells'])} | {t['coverage']:.0%} | "
                     f"{t['mae_points']:.1f} | {t['half_width_points']:.1f} |")
    cpt = r["held_out"].get("continued_pretraining:leave_one_task_out", [])
    if cpt:
        L += ["", "Continued pretraining's gain, each cell forecast by a fit on the other task:", "",
              "| cell | forecast (points) | realised (points) | McNemar p | sign right |", "|---|---|---|---|---|"]
        for c in cpt:
            pv = "-" if c["p_value"] is None else f"{c['p_value']:.2g}"
            L.append(f"| {c['cell']} | {c['forecast_points']:+.1f} | {c['realised_points']:+.1f} | {pv} | "
                     f"{'yes' if c['sign_right'] else 'no'} |")
    g = r["held_out"].get("frozen_encoder_gap")
    if g:
        L += ["", "The frozen encoder's gap over TF-IDF + LR (logistic regression on MiniLM's mean-pooled embeddings "
                  "of up to 512 training rows against TF-IDF + LR on the same rows, each scored on up to 512 validation "
                  "rows and on the training rows out of fold, planner/embed_probe.py, 3-30 s a "
                  "task), the MiniLM fit's feature, against the fit on labels per class in its place (mean absolute error, points):", "",
              "| cells | one cell out, without -> with | one task out, without -> with |", "|---|---|---|"]
        for scope, name in (("", "all tasks"), ("first:", "rt, tweets, news (before the unseen tasks)")):
            if f"{scope}with:cell" in g:
                L.append(f"| {name} | {g[scope + 'without:cell']['mae_points']:.1f} -> {g[scope + 'with:cell']['mae_points']:.1f} "
                         f"| {g[scope + 'without:task']['mae_points']:.1f} -> {g[scope + 'with:task']['mae_points']:.1f} |")
    if r.get("runs"):
        L += ["", "Planned sweeps run after the fit, each recording the forecast its plan made before any fit held "
                  "it: runs/forecast_check/ (`python -m benchmarks.forecast held_out`); runs/forecast_unseen/ and "
                  "runs/forecast_unseen2/, four tasks no calibration saw (`... unseen`, `... unseen2`); "
                  "runs/forecast_gap/, the first plans with the frozen encoder's gap; runs/forecast_after7/, the first "
                  "under the seven-task fit; runs/forecast_fresh/, twelve cells of all seven tasks no fit held "
                  "(`... fresh`); runs/forecast_rows/, the four cells whose plans had trained on fewer rows, planned "
                  "again once shrunk plans kept every row (docs/decisions.md, \"No fewer rows\"); "
                  "runs/forecast_fresh2/, ten more under that planner; runs/blend_check/, read against the model "
                  "alone. runs/forecast_fresh3/ and runs/forecast_fresh4/, thirteen more cells each planned under the "
                  "fit on all of those (`... fresh3`, `... fresh4`), runs/forecast_fresh5/, thirteen more under the "
                  "same cells' fit with the gap read on training rows too (`... fresh5`), runs/forecast_fresh6/, "
                  "thirteen more once the forecast was floored at the majority share (`... fresh6`), and "
                  "runs/forecast_fresh7/ and runs/forecast_fresh8/, thirteen more each under the fit that took fresh5 "
                  "and fresh6 in, the held-out tasks tested on half their rows (`... fresh7`, `... fresh8`), and "
                  "runs/forecast_fresh9/, thirteen more under the fit that took those in, the majority floor taken "
                  "after the plan's own price (`... fresh9`), and runs/forecast_fresh10/, thirteen more under that "
                  "fit with the encoder's lead over the probe (`... fresh10`), and runs/forecast_fresh11/ and "
                  "runs/forecast_fresh12/, thirteen more each under the fit with that lead read at the trials' rows "
                  "(`... fresh11`, `... fresh12`), and runs/forecast_fresh13/ and runs/forecast_fresh14/, thirteen "
                  "more each under the fit that took fresh9 to fresh12 in (`... fresh13`, `... fresh14`), were each "
                  "read before any fit held them; the fit above holds all but blend_check, fresh3, fresh4, fresh13 "
                  "and fresh14 (fresh9 and fresh10 were also read again under the fit before it from their plans' "
                  "inputs: `forecast_sets.replayed`):", "",
              "| run | forecast (80 %) | realised | covered | error (points) |", "|---|---|---|---|---|"]
        L += [f"| {x['run'].split('runs/')[-1]} | {x['forecast'][1]:.3f} ({x['forecast'][0]:.3f}-{x['forecast'][2]:.3f}) | "
              f"{x['realised']:.3f} | {'yes' if x['covered'] else 'no'} | {x['error_points']:+.1f} |" for x in r["runs"]]
        s = r["runs_summary"]
        L.append(f"\n{s['n']} runs: the interval covered {s['coverage']:.0%}, mean absolute error {s['mae_points']:.1f} points.")
        for name, x in (r.get("fresh_summaries") or {}).items():
            if x.get("n"):
                L.append(f"- {name}: {x['n']} runs, covered {x['coverage']:.0%}, {x['mae_points']:.1f} points off"
                         + (f" (test-row sampling alone: {x['test_noise_points']:.1f})" if x.get("test_noise_points") else ""))
    return L
