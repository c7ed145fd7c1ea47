"""Calibration for the planner: which strategies and LRs win at which data size and budget.

For each real task (Rotten Tomatoes, health-news tweets) x training size (100, 1,000,
and all / 10,000 labelled examples) x budget level (short = >= 100 optimizer steps per trial, long
= >= 300; long only for 100 and 1,000), two sweeps run to completion (no early stopping):
  - exhaustive: every strategy x 3 log-spaced LRs across its range, from the pretrained
    checkpoint (18 trials);
  - scratch: full fine-tuning x the same 3 LRs, from random init, same architecture.
Trial shapes (batch, epochs, max_len, evaluations) come from ptft_ray.planner.sizing, so
the calibration and the planner use the same trials. A finished cell is reused.

    .venv/bin/python benchmarks/calibrate.py [--pretrained CKPT] [--cells rt:100:short,...]
writes benchmarks/results/calibration.json (every trial, its curve, the winners).

    .venv/bin/python benchmarks/calibrate.py --family hf_encoder --pretrained data/models/minilm \
        --cells rt:100:short,rt:1000:short --no-scratch
calibrates a pretrained Hugging Face encoder (MiniLM) in its own LR space (pretrained
Transformers fine-tune at 1e-5..1e-4, two orders below our small GPT) and writes
benchmarks/results/calibration_hf_encoder.json, which derive_rules.py --family hf_encoder
turns into the planner's rules for that family.
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TASKS = {"rt": "data/rotten_tomatoes.parquet", "tweets": "data/health_tweets.parquet"}
# size "all" = the whole training split (Rotten Tomatoes: ~10k); the tweets' whole split
# (~50k) would take ~2 h a cell on 2 CPUs, so its large cell is 10,000
CELLS = [f"{t}:{n}:{lv}" for lv, sizes in (("short", (100, 1000)), ("long", (100,))) for n in sizes for t in TASKS] \
    + ["rt:all:short", "tweets:10000:short", "rt:1000:long", "tweets:1000:long"]
STRATEGIES = ["full", "linear_probe", "lora", "partial", "discriminative_lr", "gradual_unfreeze"]
# the calibrated space: wide per-strategy ranges (a linear probe needs a larger LR)
LR_RANGES = {"full": [5e-5, 3e-3], "linear_probe": [1e-3, 3e-2], "lora": [3e-4, 1e-2],
             "partial": [1e-4, 3e-3], "discriminative_lr": [1e-4, 3e-3], "gradual_unfreeze": [1e-4, 3e-3]}
# pretrained Hugging Face encoders (BERT-like): the usual fine-tuning LRs (BERT paper: 2e-5..5e-5)
# and up, adapters and a probe higher
FAMILY_LR_RANGES = {
    "gpt": LR_RANGES,
    "hf_encoder": {"full": [1e-5, 1e-4], "linear_probe": [1e-3, 3e-2], "lora": [1e-4, 3e-3],
                   "partial": [2e-5, 2e-4], "discriminative_lr": [3e-5, 3e-4], "gradual_unfreeze": [1e-5, 1e-4]},
}
FIXED = {"sweep.weight_decays": [0.01], "sweep.lr_decays": [0.7], "sweep.lora_ranks": [8],
         "sweep.unfreeze_top_k": [2], "sweep.scheduler": "none", "sweep.num_samples": 1,
         "sweep.grid_points": 3, "sweep.max_concurrent_trials": 2, "finetune.text_column": "text",
         "finetune.label_column": "label", "schedule.min_lr_ratio": 0.05, "train.log_every": 1000}


def family_suffix(family: str) -> str:
    """How a family's calibration files are named: calibration{suffix}.json ("" for our GPT)."""
    return "" if family == "gpt" else f"_{family}"


def overrides(d: dict) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in d.items()]


def default_checkpoint() -> str:
    p = Path("runs/main/pretrain/result.json")
    if not p.is_file():
        sys.exit("no pretrained checkpoint: run `make run` first or pass --pretrained")
    return json.loads(p.read_text())["checkpoint"]


def run_cell(cell: str, ckpt: str, root: Path, spaces: dict | None = None,
             kinds: tuple[str, ...] = ("exhaustive", "scratch"), lr_ranges: dict | None = None,
             extra: dict | None = None) -> dict:
    """spaces: {"exhaustive"|"scratch": (strategies, lr_ranges, grid points)}; default the
    calibrated space (6 strategies x 3 LRs) and scratch full fine-tuning x 3 LRs.
    kinds: which of the two sweeps to run (a held-out cell needs only the exhaustive one).
    extra: config values over FIXED (e.g. sweep.stop_on_noise)."""
    from ptft_ray.config import load_config
    from ptft_ray.data.tasks import load_task
    from ptft_ray.finetune.backbones import resolve_sources
    from ptft_ray.finetune.sweep import sweep
    from ptft_ray.planner.scan import scan_task
    from ptft_ray.planner.sizing import shape_overrides
    from ptft_ray.report.collect import trial_curves

    task_name, n, level = cell.split(":")
    base = {**FIXED, "finetune.data": TASKS[task_name], "finetune.max_examples": 0 if n == "all" else int(n),
            **(extra or {})}
    cfg0 = load_config(None, overrides(base))
    (src,) = resolve_sources([ckpt], cfg0)
    scan = scan_task(load_task(cfg0.finetune), src.tokenizer_json)
    shape = shape_overrides(scan["examples"]["train"], scan["length"]["p95"], src.max_positions, level,
                           scan["num_classes"])
    out = {"cell": cell, "task": task_name, "n_train": scan["examples"]["train"], "level": level,
           "shape": shape, "scan": scan}
    ranges = lr_ranges or LR_RANGES
    spaces = spaces or {"exhaustive": (STRATEGIES, ranges, 3), "scratch": (["full"], ranges, 3)}
    for kind, source in (("exhaustive", ckpt), ("scratch", "none")):
        if kind not in kinds:
            continue
        strategies, ranges, points = spaces[kind]
        d = root / cell.replace(":", "_") / kind
        cfg = load_config(None, overrides({**base, **shape, "sweep.strategies": strategies,
                                           "sweep.lr_ranges": ranges, "sweep.grid_points": points}))
        if (d / "result.json").is_file():
            res = json.loads((d / "result.json").read_text())
        else:
            res = sweep(cfg, [source], str(d), overwrite=True, arch_from=ckpt if source == "none" else None)
        cur = trial_curves(d, "val_accuracy")
        trials = []
        for r in csv.DictReader(open(d / "trials.csv")):
            trials.append({"strategy": r["strategy"], "lr": float(r["lr"]),
                           "val": float(r["best_metric"]) if r["best_metric"] else None,
                           "wall_s": float(r["wall_s"] or 0), "steps": int(float(r["steps_trained"] or 0)),
                           "stop_reason": r["stop_reason"], "curve": cur.get(r["trial_id"], [])})
        out[kind] = {"trials": trials, "test_accuracy": res["test_accuracy"], "test_macro_f1": res["test_macro_f1"],
                     "best_config": res["best_config"], "best_val": res["best_metric"],
                     "trial_time_s": res["trial_time_s"], "wall_s": res["wall_s"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pretrained", default=None)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--family", default="gpt", choices=sorted(FAMILY_LR_RANGES))
    ap.add_argument("--root", default=None, help="default runs/calibration[_FAMILY]")
    ap.add_argument("--out", default=None, help="default benchmarks/results/calibration[_FAMILY].json")
    ap.add_argument("--no-scratch", action="store_true",
                    help="run only the exhaustive sweep (held-out cells for benchmarks/planner_accept.py)")
    a = ap.parse_args()
    from ptft_ray.cluster import init_ray

    ckpt = a.pretrained or default_checkpoint()
    suffix = family_suffix(a.family)
    root = Path(a.root or f"runs/calibration{suffix}")
    ranges = FAMILY_LR_RANGES[a.family]
    init_ray()
    rate = None
    if a.family != "gpt":  # no pretraining history: the planner's own live measurement
        from ptft_ray.finetune.backbones import resolve_sources
        from ptft_ray.config import load_config
        from ptft_ray.planner.throughput import measure_rate

        rate = measure_rate(resolve_sources([ckpt], load_config(None))[0])
    outp = Path(a.out or f"benchmarks/results/calibration{suffix}.json")
    done = json.loads(outp.read_text())["cells"] if outp.is_file() else {}
    for cell in a.cells.split(","):
        t0 = time.time()
        done[cell] = run_cell(cell, ckpt, root, kinds=("exhaustive",) if a.no_scratch else
                              ("exhaustive", "scratch"), lr_ranges=ranges)
        ex, sc = done[cell]["exhaustive"], done[cell].get("scratch")
        print(f"[calibrate] {cell}: best {ex['best_config']['strategy']} lr {ex['best_config']['lr']:.2e} "
              f"val {ex['best_val']:.4f} test {ex['test_accuracy']:.4f}"
              + (f" | scratch test {sc['test_accuracy']:.4f}" if sc else "")
              + f" ({time.time() - t0:.0f} s)", flush=True)
        import ray
        result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {platform.node()}",
                  "versions": {"ray": ray.__version__, "torch": __import__("torch").__version__},
                  "command": "python benchmarks/calibrate.py" + (f" --family {a.family}" if suffix else ""),
                  "pretrained": ckpt, "family": a.family, "rate_tokens_per_s": rate,
                  "lr_ranges": ranges, "cells": done}
        outp.parent.mkdir(parents=True, exist_ok=True)
        outp.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
