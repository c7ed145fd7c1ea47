"""bf16 autocast on a CPU with native bf16 arithmetic (`train.precision: auto` there): the
speed of a training step against fp32, and what it does to accuracy.

    python -m benchmarks.cpu_bf16 [CELL ...]   # -> benchmarks/results/cpu_bf16.json (~20 min)

Speed: the planner's throughput probe (one torch thread, AdamW steps, fp32 master weights) on
MiniLM at 224 tokens a row and on the tests' tiny GPT, fp32 and bf16 interleaved in one process,
so the machine's drift hits both alike. Accuracy: the stopping benchmark's 9-trial MiniLM grids
(runs/stopping_paired/full: fp32, run to the end) run again in bf16 with the same seed and order;
each trial's best validation accuracy against its fp32 twin, and the two exported winners on the
same test rows (McNemar).
"""
from __future__ import annotations

import csv
import json
import statistics
import sys

from benchmarks.common import ROOT, save
from benchmarks.stopping import PAIRED_STRATEGIES, sweep_dir

CELLS = ["rt:100:short", "rt:1000:short", "tweets:100:short", "tweets:1000:short"]
MINILM = ROOT / "data" / "models" / "minilm"


def step_rates(repeats: int = 3) -> list[dict]:
    """tokens/s of fp32 and bf16 steps, alternated `repeats` times; the medians and their ratio."""
    from ptft_ray.config import ModelConfig, load_config
    from ptft_ray.finetune.backbones import resolve_sources
    from ptft_ray.planner.throughput import _timed_steps
    from ptft_ray.tokenizer import from_json

    (src,) = resolve_sources([str(MINILM)], load_config(None, []))
    tok = from_json(src.tokenizer_json)
    tiny = ModelConfig(preset="gpt_tiny", arch="gpt", d_model=64, n_layers=2, n_heads=2, max_seq_len=64)
    cases = [("MiniLM, 224 tokens", src.model, src.path, tok.vocab_size, tok.pad_id, 224),
             ("tiny GPT (the tests'), 64 tokens", tiny, None, 64, 0, 64)]
    rows = []
    for name, model, path, vocab, pad, seq in cases:
        rates = {"fp32": [], "bf16": []}
        for _ in range(repeats):
            for p in rates:
                rates[p].append(_timed_steps(model, path, vocab, pad, False, p, seq)[0])
        med = {p: statistics.median(r) for p, r in rates.items()}
        rows.append({"model": name, "fp32_tokens_per_s": round(med["fp32"]), "bf16_tokens_per_s": round(med["bf16"]),
                     "speedup": round(med["bf16"] / med["fp32"], 2)})
        print(rows[-1], flush=True)
    return rows


def trial_vals(d) -> dict:
    """(strategy, lr) -> (best validation accuracy, wall s) of a sweep's trials.csv."""
    return {(r["strategy"], round(float(r["lr"]), 9)): (float(r["best_metric"]), float(r["wall_s"]))
            for r in csv.DictReader(open(d / "trials.csv"))}


def cell_pair(cell: str) -> dict:
    """The fp32 grid of runs/stopping_paired/full against the same grid run in bf16."""
    from benchmarks.calibrate import FAMILY_LR_RANGES, run_cell
    from ptft_ray.finetune.stats import paired

    space = {"exhaustive": (PAIRED_STRATEGIES, FAMILY_LR_RANGES["hf_encoder"], 3)}
    run_cell(cell, str(MINILM), ROOT / "runs" / "bf16_paired", space, ("exhaustive",),
             extra={"sweep.stop_on_noise": False, "train.precision": "bf16"})
    dirs = {"fp32": sweep_dir(ROOT / "runs" / "stopping_paired", "full", cell),
            "bf16": ROOT / "runs" / "bf16_paired" / cell.replace(":", "_") / "exhaustive"}
    vals = {p: trial_vals(d) for p, d in dirs.items()}
    diffs = [100 * (vals["bf16"][k][0] - vals["fp32"][k][0]) for k in vals["fp32"]]
    res = {p: json.loads((d / "result.json").read_text()) for p, d in dirs.items()}
    ev = {p: json.loads((d / "evaluation.json").read_text()) for p, d in dirs.items()}
    return {"cell": cell, "trials": len(diffs),
            "val_points_mean_diff": round(statistics.mean(diffs), 2),
            "val_points_max_abs_diff": round(max(map(abs, diffs)), 2),
            "trial_time_s": {p: round(sum(w for _, w in v.values()), 1) for p, v in vals.items()},
            "winner": {p: f"{r['best_config']['strategy']} lr {r['best_config']['lr']:.2g}" for p, r in res.items()},
            "test_accuracy": {p: round(r["test_accuracy"], 4) for p, r in res.items()},
            "mcnemar": paired(ev["bf16"], ev["fp32"])}


def section(r: dict | None) -> list[str]:
    if not r:
        return []
    L = ["", "## bf16 on a CPU with native bf16 (`train.precision: auto`)", "",
         f"Command: `{r['command']}` ({r['machine'].get('cpu', '?')}, {r['machine'].get('date', '?')}). "
         "One training step (the planner's probe: one thread, AdamW, fp32 master weights), fp32 and bf16 "
         "alternated in one process:", "",
         "| model | fp32 tokens/s | bf16 tokens/s | bf16 / fp32 |", "|---|---|---|---|"]
    L += [f"| {x['model']} | {x['fp32_tokens_per_s']} | {x['bf16_tokens_per_s']} | {x['speedup']:.2f}x |"
          for x in r["step_rates"]]
    L += ["", "The stopping benchmark's 9-trial MiniLM grids (fp32, run to the end, runs/stopping_paired/full) "
          "run again in bf16, the same seed and trial order; trial time as clocked on the two days (the same "
          "host type):", "",
          "| cell | trial time fp32 / bf16 | validation points, bf16 - fp32 (mean, max abs over 9 trials) "
          "| winner fp32 / bf16 | test accuracy fp32 / bf16 | McNemar p |", "|---|---|---|---|---|---|"]
    for c in r["cells"]:
        t, a, w = c["trial_time_s"], c["test_accuracy"], c["winner"]
        L.append(f"| {c['cell']} | {t['fp32']:.0f} / {t['bf16']:.0f} s ({t['fp32'] / t['bf16']:.2f}x) | "
                 f"{c['val_points_mean_diff']:+.2f}, {c['val_points_max_abs_diff']:.1f} | {w['fp32']} / {w['bf16']} | "
                 f"{a['fp32']:.4f} / {a['bf16']:.4f} | {c['mcnemar']['p_value']:.2g} |")
    return L


def main() -> None:
    cells = sys.argv[1:] or CELLS
    result = {"step_rates": step_rates(), "cells": []}
    for c in cells:
        result["cells"].append(cell_pair(c))
        print(result["cells"][-1], flush=True)
    save("cpu_bf16", result)


if __name__ == "__main__":
    main()
