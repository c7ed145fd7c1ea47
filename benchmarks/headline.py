"""BENCHMARKS.md's opening table: one row per measure (anchor, goal, measured, met / missed),
read from benchmarks/results/*.json; the sections below it hold the details."""
from __future__ import annotations

import json

from .common import RESULTS
from .forecast_sets import BLIND_NOW

HEAD = ["| measure | anchor | goal | measured | |", "|---|---|---|---|---|"]


def _load(name: str) -> dict:
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _row(measure: str, anchor: str, goal: str, measured: str, met: bool | None) -> str:
    verdict = "" if met is None else ("**met**" if met else "**missed**")
    return f"| {measure} | {anchor} | {goal} | {measured} | {verdict} |"


def quality_rows(q: dict) -> list[str]:
    """Each quality cell: the best model row against TF-IDF + LR on the same rows."""
    rows = []
    for cell, t in (q.get("table") or {}).items():
        base = (t.get("tfidf_lr") or {}).get("accuracy")
        models = {k: v["accuracy"] for k, v in t.items() if k not in ("tfidf_lr", "majority") and "accuracy" in v}
        if base is None or not models:
            continue
        name, best = max(models.items(), key=lambda kv: kv[1])
        points = 100 * (best - base)
        n = cell.split(":")[1]
        few = n == "100"  # at 100 labels the goal is to beat the bag of words at all
        rows.append(_row(f"quality {cell}: best row ({name}) test accuracy", f"TF-IDF + LR {base:.3f}",
                         "> 0 points" if few else ">= +5 points", f"{best:.3f} ({points:+.1f})",
                         points > 0 if few else points >= 5))
    return rows


def speed_rows(peer: dict, tp: dict, ov: dict) -> list[str]:
    rows = []
    sp, se = peer.get("speed") or {}, peer.get("search") or {}
    if sp:
        rows.append(_row("fine-tuning examples/s, MiniLM, 1 worker", "HF Trainer", ">= 1.0x",
                         f"{sp['ratio']:.2f}x", sp.get("met")))
    if se:
        to_best = "to_hf_best_s" in se.get("ours", {})
        what = ("time to HF's final validation accuracy, then test accuracy" if to_best
                else "time to TF-IDF + 5 points on validation")
        got = f"{se['time_ratio']:.2f}x" if se["time_ratio"] is not None else "never reached"
        if to_best:
            got += f", test {100 * (se['ours']['test_accuracy'] - se['hf_trainer']['test_accuracy']):+.1f} points"
        rows.append(_row(what, "HF hyperparameter_search", "<= 0.5x, not lower", got, se.get("met")))
    for size, r in (tp.get("summary") or {}).items():
        rows.append(_row(f"Ray Train overhead, {size}", "plain PyTorch loop", ">= 0.95x",
                         f"{r['ray_train_overhead_ratio']:.2f}x", r["ray_train_overhead_ratio"] >= 0.95))
    g = (tp.get("summary") or {}).get("gpt_small", {})
    if "ddp_scaling_2w_over_1w" in g:
        rows.append(_row("DDP scaling, gpt_small, 2 workers", "1 worker", ">= 1.7x",
                         f"{g['ddp_scaling_2w_over_1w']:.2f}x", g["ddp_scaling_2w_over_1w"] >= 1.7))
    dp = _load("data_pipeline")
    if "peak_pss_growth_4x_over_1x" in dp:
        g = dp["peak_pss_growth_4x_over_1x"]
        rows.append(_row("memory streaming a corpus of 4x the object store", "1x the object store", "<= 1.1x",
                         f"{g:.2f}x", g <= 1.1))
    if ov:
        rows.append(_row("one-worker Tune trial, in-process", "a TorchTrainer per trial", "-",
                         f"{ov['mean_trial_s_in_process']:.1f} s vs {ov['mean_trial_s_torchtrainer']:.1f} s", None))
    return rows + bf16_rows(_load("cpu_bf16"))


def bf16_rows(b: dict) -> list[str]:
    if not b.get("cells"):
        return []
    t = [c["trial_time_s"]["fp32"] / c["trial_time_s"]["bf16"] for c in b["cells"]]
    lost = [100 * (c["test_accuracy"]["fp32"] - c["test_accuracy"]["bf16"]) for c in b["cells"]]
    return [_row(f"bf16 on a native-bf16 CPU, {len(t)} MiniLM grids of 9 trials", "the same grids in fp32",
                 "no test accuracy lost (<= 0.5 points)",
                 f"trial time {min(t):.1f}-{max(t):.1f}x shorter, test points lost {max(lost):+.1f} at most",
                 max(lost) <= 0.5)]


def planner_rows(pa: dict) -> list[str]:
    rows = []
    for c in (pa.get("hf_encoder") or {}).get("cells", []):
        planned = [p["test"] for p in c.get("planned", [])]
        if not planned or "exhaustive" not in c:
            continue
        mean, ex = sum(planned) / len(planned), c["exhaustive"]["test"]
        gap = 100 * (mean - ex)
        rows.append(_row(f"planned sweep, MiniLM, {c['cell']} ({len(planned)} seeds)", f"18-trial grid {ex:.3f}",
                         "within 1 point at <= 1/3 of its time", f"{mean:.3f} ({gap:+.1f})", gap >= -1))
    return rows


def compress_rows(c: dict, sl: dict) -> list[str]:
    rows = []
    d = c.get("distill") or {}
    if d:
        sp = d["speed"]["batch_64"]["speedup"]
        rows.append(_row("distilled student (layers:2) speed, batch 64", "the teacher", ">= 3x",
                         f"{sp:.2f}x at {-d['points_lost']:+.1f} points", sp >= 3))
    for method, q in (c.get("quantize") or {}).items():
        if isinstance(q, dict) and "speedup_batch_1" in q:
            lost = f" at {-q['points_lost']:+.1f} points" if "points_lost" in q else " (accuracy not measured)"
            rows.append(_row(f"int8 ({method}) speed, batch 1", "the fp32 export", ">= 1.5x",
                             f"{q['speedup_batch_1']:.2f}x{lost}", q["speedup_batch_1"] >= 1.5))
    top = (sl.get("levels") or [{}])[-1]
    if top:
        rows.append(_row(f"serving, {top['clients']} clients, 1 replica", "-", "0 errors",
                         f"{top['requests_per_s']:.0f} req/s, p99 {top['p99_ms']:.0f} ms, {top['errors']} errors",
                         top["errors"] == 0))
    return rows


def memory_rows(mp: dict) -> list[str]:
    ratios = [m["plan_over_measured"] for m in mp.get("measured", [])]
    if not ratios:
        return []
    ok = sum(0.8 <= r <= 1.2 for r in ratios)
    rows = [_row(f"memory plan, {len(ratios)} models / loss paths (CPU, one process)", "measured peak resident memory",
                 "within 20 % on each", f"{min(ratios):.2f}-{max(ratios):.2f}x, {ok} of {len(ratios)} within",
                 ok == len(ratios))]
    by = {m["model"]: m["measured_bytes"] for m in mp["measured"]}
    whole, chunked = by.get("gpt_d256 vocab 128k, whole"), by.get("gpt_d256 vocab 128k, chunked")
    if whole and chunked:
        rows.append(_row("LM loss in chunks, 128k vocabulary (CPU, micro-batch 8 x 256)", "the whole batch's logits",
                         "measured, less memory", f"{chunked / 2 ** 20:.0f} vs {whole / 2 ** 20:.0f} MiB peak "
                         f"({chunked / whole:.2f}x)", chunked < whole))
    return rows


def corpus_rows(cs: dict) -> list[str]:
    r = cs.get("ratio_100x_over_1x")
    if not r:
        return []
    worst = max(v for k, v in r.items() if k != "first_step")
    return [_row("a corpus of 100x the files, pretraining", "1x the files", "<= 1.1x",
                 f"first batch {r['first_step']:.2f}x, peak memory <= {worst:.2f}x (driver, train worker, Ray Data)",
                 r["first_step"] <= 1.1 and worst <= 1.1)]


# benchmarks/forecast.fresh_summaries: cells of all seven tasks no fit held, under the fit in force
FRESH_ROWS = {"fresh": "cells no fit held, all seven tasks, planned at 0558da3 (runs/forecast_fresh)",
              "fresh2": "more such cells, planned once shrunk plans kept every row (runs/forecast_fresh2)",
              "planner_now": "such cells under the planner since 671f8c7 (forecast_fresh2, forecast_rows, and the "
                             "forecast_fresh plans that change left as they were)",
              "fresh3": "more such cells, planned under the fit on all 51 cells before them, on the probe a plan "
                        "reads (runs/forecast_fresh3)",
              "fresh4": "more such cells under the same fit (runs/forecast_fresh4)",
              "fit_before_pooling": "such cells under the fit on 51 cells with the gap read on validation rows "
                                    "alone (forecast_fresh3 and forecast_fresh4)",
              "fresh5": "more such cells under the fit with the gap read on training rows too (runs/forecast_fresh5)",
              "fresh6": "more such cells under that fit floored at the majority share (runs/forecast_fresh6)",
              "fresh7": "more such cells under the fit on 77 cells (fresh5 and fresh6 taken in), the held-out "
                        "tasks tested on half their rows (runs/forecast_fresh7)",
              "fresh8": "more such cells under the same fit and test splits (runs/forecast_fresh8)",
              "fit_on_77": "such cells under the fit on 77 cells (forecast_fresh7 and forecast_fresh8)",
              "fresh9": "more such cells under the fit on 103 cells (fresh7 and fresh8 taken in), the majority "
                        "floor taken after the plan's own price (runs/forecast_fresh9)",
              "fresh9_replayed": "such cells, fresh9's forecasts made again from each plan's recorded inputs under the "
                                 "fit with the encoder's lead over the probe (forecast_sets.replayed; shapes stand)",
              "fresh10": "more such cells planned under the fit with the lead (runs/forecast_fresh10)",
              "fit_with_lead": "such cells under the fit with the lead (fresh9 replayed and fresh10)",
              "fresh9_10_replayed_at_rows": "such cells, fresh9 and fresh10 replayed under the fit with the lead read "
                                            "at the trials' rows (forecast_sets.replayed; shapes stand)",
              "fresh11": "more such cells planned under the fit with the lead read at the trials' rows "
                         "(runs/forecast_fresh11)",
              "fresh12": "more such cells under the same fit (runs/forecast_fresh12)",
              "blind_at_rows": "such cells planned under the fit with the lead read at the trials' rows (forecast_fresh11 "
                               "and forecast_fresh12)",
              "fit_at_rows": "such cells under the fit with the lead read at the trials' rows (fresh9 and fresh10 "
                             "replayed, fresh11 and fresh12)",
              "fresh13": "more such cells planned under the fit on 155 cells (fresh9 to fresh12 taken in; "
                         "runs/forecast_fresh13)",
              "fresh14": "more such cells under the same fit (runs/forecast_fresh14)",
              "blind_now": "such cells planned under the fit on 155 cells (forecast_fresh13 and forecast_fresh14)"}


def forecast_quality_rows(fc: dict) -> list[str]:
    """The issue's own check: the quality cells each forecast without their whole task, alone and
    together with the cells planned under today's fit and held out of it (blind_now)."""
    cells = (fc.get("held_out", {}).get("hf_encoder:leave_one_task_out") or {}).get("cells", [])
    q = [c for c in cells if len(c["cell"].split(":")) == 2]  # task:labels, where planned sweeps add the budget
    if not q:
        return []
    n, cov, err = len(q), sum(c["covered"] for c in q), sum(100 * abs(c["forecast"] - c["realised"]) for c in q)
    goal = ">= 12 cells: 80 % interval covers >= 75 %, error <= 3 points"
    rows = [_row(f"forecast, MiniLM, the {n} quality cells, each held out of the fit with its whole task",
                 "realised test accuracy", goal, f"{cov / n:.0%}, {err / n:.1f} points", None)]
    f = (fc.get("fresh_summaries") or {}).get("blind_now") or {}
    if f.get("n"):
        m = n + f["n"]
        cov, err = cov + f["covered"], err + f["mae_points"] * f["n"]
        rows.append(_row(f"forecast, those {n} and the {f['n']} cells no fit held, planned under today's fit "
                         f"({', '.join(BLIND_NOW)})",
                         "realised test accuracy", goal, f"{m} cells: {cov / m:.0%}, {err / m:.1f} points",
                         m >= 12 and cov / m >= 0.75 and err / m <= 3))
    return rows


def forecast_rows(fc: dict, st: dict) -> list[str]:
    rows = []
    for by in ("cell", "task"):
        cells = fc.get("held_out", {}).get(f"hf_encoder:leave_one_{by}_out")
        if cells:
            n, tasks = len(cells["cells"]), len({c["cell"].split(":")[0] for c in cells["cells"]})
            rows.append(_row(f"forecast, MiniLM, {n} cells of {tasks} tasks (quality cells, planned sweeps), each held out of the fit "
                             f"{'alone' if by == 'cell' else 'with its whole task'}", "realised test accuracy",
                             ">= 12 cells: 80 % interval covers >= 75 %, error <= 3 points",
                             f"{n} cells: {cells['coverage']:.0%}, {cells['mae_points']:.1f} points",
                             n >= 12 and cells["coverage"] >= 0.75 and cells["mae_points"] <= 3))
    rows += forecast_quality_rows(fc)
    runs = fc.get("runs_summary") or {}
    if runs.get("n"):
        rows.append(_row(f"forecast, {runs['n']} planned sweeps run after the fit", "realised test accuracy",
                         "80 % interval covers >= 75 %, error <= 3 points",
                         f"{runs['coverage']:.0%}, {runs['mae_points']:.1f} points",
                         runs["coverage"] >= 0.75 and runs["mae_points"] <= 3))
    for name, what in FRESH_ROWS.items():
        s = (fc.get("fresh_summaries") or {}).get(name) or {}
        if s.get("n"):
            rows.append(_row(f"forecast, {s['n']} {what}", "realised test accuracy",
                             ">= 12 cells: 80 % interval covers >= 75 %, error <= 3 points",
                             f"{s['coverage']:.0%}, {s['mae_points']:.1f} points" + (
                                 f" (test-row sampling alone: {s['test_noise_points']:.1f})" if s.get("test_noise_points") else ""),
                             s["n"] >= 12 and s["coverage"] >= 0.75 and s["mae_points"] <= 3))
    if st.get("cells"):
        rows.append(_row(f"significance-aware stopping, {len(st['cells'])} calibration grids replayed",
                         "the same trials run to the end", ">= 30 % trial time at <= 0.5 points on >= 2 cells",
                         f"{len(st['met'])} cells (validation points, not test)", len(st["met"]) >= 2))
    if st.get("paired"):
        got = "; ".join(f"{c['cell']} {c['saved_at_full_rates']:.0%} ({c['saved']:.0%} as clocked) at "
                        f"{c['test_points_lost']:+.1f}" for c in st["paired"])
        rows.append(_row(f"significance-aware stopping, MiniLM, {len(st['paired'])} cells run both ways",
                         "the same 9-trial grid to the end", ">= 30 % trial time at <= 0.5 test points on >= 2 cells",
                         got, len(st["paired_met"]) >= 2))
    return rows


def rows_of(x: dict) -> str:
    return f", {x['test_n']} test rows" if x.get("test_n") else ""


def blend_rows(bl: dict) -> list[str]:
    """One row per replayed run: the blend against TF-IDF + LR and the model on the same test rows."""
    rows = []
    for x in bl.get("runs", []):
        t, a = x["test_accuracy"], x["blend_vs_tfidf_lr"]
        rows.append(_row(f"blend with TF-IDF + LR (w {x['weight']:g}), {x['run'].split('/')[-1]}",
                         f"TF-IDF + LR {t['tfidf_lr']:.3f}, the model {t['model']:.3f}", "-",
                         f"{t['blend']:.3f} ({a['points']:+.1f} over TF-IDF + LR, p = {a['p_value']:.2g})", None))
    for x in bl.get("planned", []):
        v, b = x["vs_tfidf_lr"], x.get("budget_s")
        if not b:
            continue
        spent = x["wall_s"] + (x.get("planning_s") or 0.0)  # the command's wall clock: planning, then the sweep
        rows.append(_row(f"planned sweep, {b / 60:g}-minute budget, blend on: {x['run'].split('/')[-1]}",
                         f"TF-IDF + LR {x['tfidf_lr']:.3f}", "within the budget (+5 %), beats TF-IDF + LR (p < 0.05)",
                         f"{x['test_accuracy']:.3f} ({v['points']:+.1f}, p = {v['p_value']:.2g}{rows_of(x)}), "
                         f"the model alone {x['model_alone']:.3f}; {'planning + ' if x.get('planning_s') is not None else ''}"
                         f"sweep {spent:.0f} s of {b:.0f}",
                         spent <= 1.05 * b and v["points"] > 0 and v["p_value"] < 0.05))
    return rows


def summary_table() -> list[str]:
    rows = (quality_rows(_load("quality")) + planner_rows(_load("planner_acceptance"))
            + speed_rows(_load("peer"), _load("throughput"), _load("trial_overhead"))
            + compress_rows(_load("compress"), _load("serve_load")) + memory_rows(_load("memory_plan"))
            + corpus_rows(_load("corpus_scale"))
            + forecast_rows(_load("forecast"), _load("stopping")) + blend_rows(_load("blend")))
    return ["## Summary", "", "Every figure below, one row each; the sections after it hold the tables, "
            "the commands and the profiles.", "", *HEAD, *rows, ""]
