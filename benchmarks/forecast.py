"""The planner's forecast: fit it, check it on cells it was not fitted on, and tabulate what
runs forecast against what they realised.

    python -m benchmarks forecast              # check + runs/ table -> results/forecast.json
    python -m benchmarks.forecast fit          # -> ptft_ray/planner/forecast.json
    python -m benchmarks.forecast runs DIR...  # every result.json under DIR: forecast vs realised
    python -m benchmarks.forecast held_out     # planned sweeps on cells it was not fitted on (~35 min)
    python -m benchmarks.forecast unseen       # planned sweeps on two tasks no calibration saw (~30 min)
    python -m benchmarks.forecast gap          # planned sweeps forecast with the encoder's gap (~18 min)
    python -m benchmarks.forecast unseen2      # planned sweeps on two more unseen tasks (~25 min)
    python -m benchmarks.forecast after7       # planned sweeps on cells the seven-task fit lacks (~15 min)
    python -m benchmarks.forecast fresh        # twelve more such cells, all seven tasks (~60 min)
    python -m benchmarks.forecast rows         # the four cells whose plans had shrunk rows (~17 min)
    python -m benchmarks.forecast fresh2       # ten more cells, planned after that fix (~50 min)
    python -m benchmarks.forecast fresh3       # thirteen more, planned under the fit on all of the above (~40 min)
    python -m benchmarks.forecast fresh4       # thirteen more under the same fit (~40 min)
    python -m benchmarks.forecast fresh5       # thirteen more, the gap read on training rows too (~50 min)
    python -m benchmarks.forecast fresh6       # thirteen more, the forecast floored at the majority share (~40 min)
    python -m benchmarks.forecast fresh7       # thirteen more under the fit on 77 cells, wider test splits (~45 min)
    python -m benchmarks.forecast fresh8       # thirteen more under the same fit and splits (~45 min)
    python -m benchmarks.forecast fresh9       # thirteen more under the fit on 103 cells, floor after the price (~45 min)
    python -m benchmarks.forecast fresh10      # thirteen more under that fit with the encoder's lead (~40 min)
    python -m benchmarks.forecast fresh11      # thirteen more, the lead read at the trials' rows (~45 min)
    python -m benchmarks.forecast fresh12      # thirteen more under the same fit (~40 min)
    python -m benchmarks.forecast fresh13      # thirteen more under the fit on 155 cells (~45 min)
    python -m benchmarks.forecast fresh14      # thirteen more under the same fit (~45 min)

Fit data: the quality cells (benchmarks/results/quality.json: planned sweeps at stated budgets,
test accuracy on whole test splits) and the planned sweeps of FIT_RUNS for the model (error
reduction over the probe against the frozen encoder's gap), the quality cells for continued
pretraining's gain (adapted minus as-is); the calibration's learning curves (calibration*.json)
for what fewer steps than the sizing minimum cost. The probe is the one a plan reads (TF-IDF +
LR on the validation rows), so the held-out errors, and the interval built on them, hold its noise.
"""
from __future__ import annotations

import json
import math
import sys

import numpy as np

from benchmarks.common import RESULTS, ROOT, save
from benchmarks.forecast_sets import (CHECK, FIT, FIT_RUNS, PROSPECTIVE, REPLAYED, RUN_SETS, TASKS, fresh_summaries,
                                      held_out_runs, model_alone, replayed, run_table, summary, test_fraction,
                                      under_runs)
from ptft_ray.planner.forecast import Probe, at_majority, trained_fraction

TARGET = ROOT / "ptft_ray" / "planner" / "forecast.json"
SAVED_RUNS = RESULTS / "forecast_runs.json"
# which quality.json model stands for which planner family; continued pretraining = adapted - as-is
MODELS = {"hf_encoder": "minilm", "gpt": "gpt_news"}
CURVES = {"hf_encoder": ["calibration_hf_encoder.json", "calibration_hf_encoder_heldout.json"],
          "gpt": ["calibration.json", "calibration_heldout.json"]}
FORM = ("r = a + d (frozen encoder's gap over TF-IDF + LR) + e (its lead over the probe, read at the trials' rows) "
        "+ c min(0, log2(examples trained / sizing minimum)), "
        "or where no gap was measured a + b log10(labels per class) + the same c term; "
        "accuracy = probe + r (1 - probe), probe: TF-IDF + LR on the task's validation rows")
# the families whose fit takes the frozen encoder's gap (planner/embed_probe.py: a Hugging Face
# encoder as it is), beside a fit without it for a plan that could not measure it
WITH_GAP = {"hf_encoder": "hf_encoder_without_gap"}


def classes_by_task() -> dict:
    out = {}
    for f in RESULTS.glob("calibration*.json"):
        for cell in json.loads(f.read_text())["cells"].values():
            out[cell["task"]] = cell["scan"]["num_classes"]
    return out


def quality_cells(model: str) -> list[dict]:
    """One row per quality cell: probe, labels, classes, steps of the best trial, realised test accuracy."""
    q = json.loads((RESULTS / "quality.json").read_text())["table"]
    k_of = classes_by_task()
    rows = []
    for cell, t in q.items():
        if model not in t:
            continue
        task, n, k = cell.split(":")[0], t["tfidf_lr"]["n_train"], k_of[cell.split(":")[0]]
        bc = t[model]["best_config"]
        rows.append({"cell": cell, "task": task, "n_train": n, "classes": k,
                     "x": trained_fraction(bc["epochs"] * n, n, k), "realised": t[model]["accuracy"], "row": t[model],
                     "data": TASKS[task], "max_examples": 0 if cell.endswith(":all") else n})
    return rows


def val_probes(rows: list[dict]) -> dict:
    """The planner's probe (finetune/baseline.probe: TF-IDF + LR scored on validation rows) on
    each cell's task as its sweep had it, cached in results/forecast_val_probes.json by cell."""
    from benchmarks.embed_probe import cell_task
    from ptft_ray.finetune.baseline import probe

    path = RESULTS / "forecast_val_probes.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    for r in rows:
        if r["cell"] not in cache:
            cache[r["cell"]] = probe(cell_task(r))
            path.write_text(json.dumps(cache, indent=1) + "\n")
    return cache


def run_cells() -> list[dict]:
    """The planned MiniLM sweeps of FIT_RUNS (held_out_runs) as fit rows: the plan's own inputs
    and what it realised, less the plan's strategy gap (the forecast adds it back). Kept in
    results/forecast_runs.json (written by `fit` alone), which a checkout without those runs/
    reads instead."""
    saved = json.loads(SAVED_RUNS.read_text()) if SAVED_RUNS.is_file() else []
    here = {r["run"]: r for r in read_runs()}  # a run on this checkout replaces its saved row
    newest = {}  # a cell measured again under a later planner (a later FIT_RUNS folder) replaces it
    for r in [here.pop(r["run"], r) for r in saved] + list(here.values()):
        r = {k: v for k, v in r.items() if k != "probe"}  # older saved rows held the test-rows probe
        if r.get("fewer_rows"):  # its pin undid the plan's fewer rows: it ran a schedule no plan made
            continue
        if r["cell"] not in newest or _age(r) >= _age(newest[r["cell"]]):
            newest[r["cell"]] = r
    return list(newest.values())


def _age(row: dict) -> int:
    return FIT_RUNS.index(row["run"].split("/")[1])


def read_runs() -> list[dict]:
    rows = []
    for f in sorted(x for d in FIT_RUNS for x in (ROOT / "runs" / d).glob("*/result.json")):
        if len(f.parent.name.split("_")) != 3:  # a variant of a cell (news_1000_5m_uncapped): not a plan as made
            continue
        r, p = json.loads(f.read_text()), json.loads((f.parent / "plan.json").read_text())
        task, n, budget = f.parent.name.split("_")
        n_train, k = r["baseline"]["n_train"], p["scan"]["num_classes"]
        shift = p.get("strategy_gap", 0.0) + p.get("truncation_gap", 0.0)
        rows.append({"cell": f"{task}:{n}:{budget}", "task": task, "n_train": n_train, "classes": k,
                     "x": trained_fraction(r["best_config"]["epochs"] * n_train, n_train, k),
                     "realised": model_alone(r) - shift, "shift": shift, "data": TASKS[task],
                     "max_examples": 0 if n == "all" else int(n), "test_fraction": test_fraction(task, f.parts[-3]),
                     "run": str(f.parent.relative_to(ROOT)), "fewer_rows": bool(p["shape"].get("finetune.max_examples"))})
    return rows


def gap_check(rows: list[dict], c: float) -> dict:
    """The frozen-encoder gap (planner/embed_probe.py) against labels per class as the feature: leave-one-cell-
    and leave-one-task-out error with and without it, on every task and on the first three
    (rt, tweets, news: where it did not help before the unseen tasks came)."""
    gaps = gaps_of(rows)
    out = {"gaps": {r["cell"]: gaps[r["cell"]] for r in rows}}
    first = [r for r in rows if r["task"] in FIRST_TASKS]
    for scope, rs in (("", rows), ("first:", first)):
        for name, g in (("without", None), ("with", gaps)):
            for by in ("cell", "task"):
                errs = [100 * (h["forecast"] - h["realised"]) for h in held_out(rs, c, by, g)]
                out[f"{scope}{name}:{by}"] = {"mae_points": round(float(np.mean(np.abs(errs))), 2),
                                              "rmse_points": round(rmse(errs), 2)}
    return out


FIRST_TASKS = ("rt", "tweets", "news")  # the tasks the forecast had before the unseen ones (forecast_unseen)


def curve_slope(files: list[str]) -> float:
    """Median over calibration cells of the best-so-far validation accuracy lost per halving of
    a trial's steps (error-reduction units: points / (1 - TF-IDF + LR)), best trial per strategy."""
    tfidf = {c: t["tfidf_lr"]["accuracy"] for c, t in json.loads((RESULTS / "quality.json").read_text())["table"].items()}
    slopes = []
    for f in files:
        if not (RESULTS / f).is_file():
            continue
        for name, cell in json.loads((RESULTS / f).read_text())["cells"].items():
            p = tfidf.get(":".join(name.split(":")[:2]))
            if p is None:
                continue
            best: dict = {}
            for t in cell["exhaustive"]["trials"]:
                if t["stop_reason"] == "completed" and t.get("curve") and t["val"] > best.get(t["strategy"], {}).get("val", -1):
                    best[t["strategy"]] = t
            xs, ys = [], []
            for t in best.values():
                last, run, pts = t["curve"][-1][0], -1.0, []
                for step, v in t["curve"]:
                    run = max(run, v)
                    pts.append((step / last, run))
                xs += [math.log2(x) for x, _ in pts if 1 / 8 <= x < 1]
                ys += [(v - pts[-1][1]) / (1 - p) for x, v in pts if 1 / 8 <= x < 1]
            if xs:
                slopes.append(float(np.dot(xs, ys) / np.dot(xs, xs)))
    return float(np.median(slopes))


def features(r: dict, gaps: dict | None) -> list[float]:
    """1, the frozen encoder's gap and its lead over the probe where the family has them, else 1
    and log10(labels per class): with the gap, labels per class no longer lowered the error one
    task out (docs/decisions.md, "The forecast fitted on what a plan reads", "The encoder's lead
    over the probe")."""
    if gaps is None:
        return [1.0, math.log10(r["n_train"] / r["classes"])]
    g = gaps[r["cell"]]
    return [1.0, g["gap"], row_lead(r, g)]


def row_lead(r: dict, g: dict) -> float:
    """The `lead` a plan on this row's task reads (planner.forecast.Probe.lead): the encoder's
    pooled accuracy on g["rows"][0] training rows, moved to the row's by the probe's slope."""
    p = Probe.of({"tfidf_lr_val": r["probe"], "tfidf_lr_val_half": r["probe_half"], "majority_val": r["majority"],
                  "n_val": 1, "n_train": r["n_train"], "embed_gap": g["gap"], "embed_pooled": g["embed_lr_pooled"],
                  "embed_rows": g["rows"][0]})
    return p.lead or 0.0


def fit_rows(rows: list[dict], c: float, gaps: dict | None = None) -> list[float]:
    X = np.array([features(r, gaps) for r in rows])
    y = np.array([(r["realised"] - r["probe"]) / (1 - r["probe"]) - c * min(0.0, math.log2(r["x"])) for r in rows])
    return [float(v) for v in np.linalg.lstsq(X, y, rcond=None)[0]]


def predict(r: dict, coef: list[float], c: float, gaps: dict | None = None) -> float:
    """The forecast less the plan's own price (`shift`, as `realised` is read): the majority
    floor acts on the forecast as planned. Rows saved before the shift was kept floor without it."""
    rr = float(np.dot(coef, features(r, gaps))) + c * min(0.0, math.log2(r["x"]))
    return floored(r["probe"] + rr * (1 - r["probe"]), r)


def floored(acc: float, r: dict) -> float:
    """A fit row's forecast at least the majority share once its plan's price is on (`predict`)."""
    return at_majority(acc + r.get("shift", 0.0), r["majority"]) - r.get("shift", 0.0)


def held_out(rows: list[dict], c: float, by: str, gaps: dict | None = None) -> list[dict]:
    """Each row predicted by a fit without it (by='cell') or without its whole task (by='task')."""
    out = []
    for r in rows:
        rest = [o for o in rows if (o["cell"] != r["cell"] if by == "cell" else o["task"] != r["task"])]
        coef = fit_rows(rest, c, gaps) if len(rest) > len(features(r, gaps)) else [0.0] * len(features(r, gaps))
        out.append({"cell": r["cell"], "forecast": round(predict(r, coef, c, gaps), 4), "realised": round(r["realised"], 4)})
    return out


def family_rows(fam: str) -> list[dict]:
    """The fit's rows: the quality cells, and for MiniLM the planned sweeps of FIT_RUNS; each
    with the probe a plan reads (TF-IDF + LR on validation rows), so the fit's held-out errors
    hold that probe's noise."""
    rows = quality_cells(MODELS[fam]) + (run_cells() if fam == "hf_encoder" else [])
    probes = val_probes(rows)
    return [{**r, "probe": probes[r["cell"]]["tfidf_lr_val"], "probe_half": probes[r["cell"]]["tfidf_lr_val_half"],
             "majority": probes[r["cell"]]["majority_val"]} for r in rows]


def cpt_rows() -> list[dict]:
    q = json.loads((RESULTS / "quality.json").read_text())["table"]
    k_of = classes_by_task()
    return [{"cell": c, "task": c.split(":")[0], "npc": t["tfidf_lr"]["n_train"] / k_of[c.split(":")[0]],
             "gain": 100 * (t["minilm_adapted"]["accuracy"] - t["minilm"]["accuracy"]),
             "p": t["minilm_adapted"].get("vs_minilm", {}).get("p_value")}
            for c, t in q.items() if "minilm_adapted" in t and "minilm" in t]


def fit_cpt(rows: list[dict]) -> tuple[float, float]:
    X = np.array([[1.0, math.log10(r["npc"])] for r in rows])
    u, v = np.linalg.lstsq(X, np.array([r["gain"] for r in rows]), rcond=None)[0]
    return float(u), float(v)


def rmse(errs: list[float]) -> float:
    return float(math.sqrt(np.mean(np.square(errs))))


INTERVAL = ("80 %: the ceil(0.8 (n + 1))-th smallest of the n cells' absolute leave-one-task-out "
            "errors (a conformal quantile: it covers 80 % wherever errors are exchangeable, heavy tails included; "
            "of the task left out, as a user's task is never one the forecast was fitted on)")


def conformal_half(abs_errs: list[float]) -> float:
    """The interval's half-width from n held-out absolute errors (see INTERVAL)."""
    e = sorted(abs_errs)
    return float(e[min(len(e), math.ceil(0.8 * (len(e) + 1))) - 1])


def gaps_of(rows: list[dict]) -> dict:
    from benchmarks.embed_probe import gaps_for

    return gaps_for(rows)


def fit_family(rows: list[dict], c: float, model: str, gaps: dict | None) -> dict:
    """a, b (and d, with gaps), the error one cell out, the interval's half-width one task out."""
    coef = fit_rows(rows, c, gaps)
    errs = [100 * (h["forecast"] - h["realised"]) for h in held_out(rows, c, "cell", gaps)]
    by_task = [100 * abs(h["forecast"] - h["realised"]) for h in held_out(rows, c, "task", gaps)]
    return {**dict(zip("ade" if gaps is not None else "ab", (round(v, 4) for v in coef))), "c": round(c, 4), "cells": len(rows),
            "model": model, "rmse_points": round(rmse(errs), 2), "half_width_points": round(conformal_half(by_task), 2)}


def fit() -> dict:
    SAVED_RUNS.write_text(json.dumps(run_cells(), indent=1) + "\n")  # the runs it is fitted on
    fams = {}
    for fam, model in MODELS.items():
        rows, c = family_rows(fam), curve_slope(CURVES[fam])
        if fam in WITH_GAP:
            fams[fam] = {**fit_family(rows, c, model, gaps_of(rows)), "without_gap": WITH_GAP[fam]}
            fams[WITH_GAP[fam]] = fit_family(rows, c, model, None)
        else:
            fams[fam] = fit_family(rows, c, model, None)
    crow = cpt_rows()
    u, v = fit_cpt(crow)
    loo_c = [r["gain"] - (lambda uv: uv[0] + uv[1] * math.log10(r["npc"]))(fit_cpt([o for o in crow if o is not r]))
             for r in crow]
    out = {"source": f"benchmarks/results/quality.json + forecast_runs.json (runs/{', runs/'.join(FIT_RUNS)}; a cell "
                     "measured again replaces its older row) + calibration*.json learning curves",
           "command": "python -m benchmarks.forecast fit", "form": FORM, "interval": INTERVAL, "families": fams,
           "continued_pretraining": {"u": round(u, 3), "v": round(v, 3), "cells": len(crow),
                                     "rmse_points": round(rmse(loo_c), 2),
                                     "half_width_points": round(conformal_half(np.abs(loo_c).tolist()), 2),
                                     "form": "points = u + v log10(labels per class)"}}
    TARGET.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return out


def check() -> dict:
    """Leave-one-cell-out and leave-one-task-out: coverage of the 80 % interval, mean absolute
    error. Nested: each held-out cell's interval is built from the other cells alone (their own
    leave-one-task-out errors), as the planner builds it from the cells it was fitted on."""
    from ptft_ray.planner.forecast import FITTED

    tables = {}
    for fam in MODELS:
        rows, c = family_rows(fam), FITTED["families"][fam]["c"]
        gaps = gaps_of(rows) if fam in WITH_GAP else None
        for by in ("cell", "task"):
            hs = held_out(rows, c, by, gaps)
            for r, h in zip(rows, hs):
                rest = [o for o in rows if (o["cell"] != r["cell"] if by == "cell" else o["task"] != r["task"])]
                h["half_width"] = round(conformal_half([abs(i["forecast"] - i["realised"])
                                                        for i in held_out(rest, c, "task", gaps)]), 4)
                h["covered"] = abs(h["forecast"] - h["realised"]) <= h["half_width"]
            errs = [100 * abs(h["forecast"] - h["realised"]) for h in hs]
            tables[f"{fam}:leave_one_{by}_out"] = {
                "cells": hs, "coverage": round(sum(h["covered"] for h in hs) / len(hs), 3),
                "mae_points": round(float(np.mean(errs)), 2),
                "half_width_points": FITTED["families"][fam]["half_width_points"]}
    crow = cpt_rows()
    cpt = []
    for r in crow:
        u, v = fit_cpt([o for o in crow if o["task"] != r["task"]])
        cpt.append({"cell": r["cell"], "forecast_points": round(u + v * math.log10(r["npc"]), 2),
                    "realised_points": round(r["gain"], 2), "p_value": r["p"],
                    "sign_right": (u + v * math.log10(r["npc"]) > 0) == (r["gain"] > 0)})
    tables["continued_pretraining:leave_one_task_out"] = cpt
    tables["frozen_encoder_gap"] = gap_check(family_rows("hf_encoder"), FITTED["families"]["hf_encoder"]["c"])
    return tables


def main(argv: list[str]) -> int:
    if argv[:1] == ["held_out"]:
        held_out_runs(argv[1:] or CHECK)
        return 0
    if argv[:1] and argv[0] in RUN_SETS:
        held_out_runs(argv[1:] or RUN_SETS[argv[0]], under=f"forecast_{argv[0]}")
        return 0
    if argv[:1] == ["fit"]:
        fit()
        return 0
    if argv[:1] == ["runs"]:
        print(json.dumps(run_table(argv[1:] or ["runs"]), indent=1))
        return 0
    # a run directory this checkout lacks keeps its row; one it has is read again
    saved = json.loads((ROOT / "benchmarks" / "results" / "forecast.json").read_text())
    fresh = run_table([str(ROOT / "runs" / d) for d in PROSPECTIVE])
    runs = list({r["run"]: r for r in ({**r, "run": under_runs(r["run"])}
                                        for r in saved.get("runs", []) + fresh)}.values())
    again = {**saved.get("replayed", {}),
             **{f"{FIT}:{d}": replayed([str(ROOT / "runs" / d)]) for d in REPLAYED if (ROOT / "runs" / d).is_dir()}}
    save("forecast", {"held_out": check(), "runs": runs, "runs_summary": summary(runs),
                      "fresh_summaries": fresh_summaries(runs, again), "replayed": again})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
