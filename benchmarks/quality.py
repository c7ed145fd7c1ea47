"""What each stage buys: test accuracy and macro-F1 (with Wilson 95 % intervals) per cell
(task x training labels) and row (baseline or pipeline), every model row a planned sweep with
the same budget per cell, on the whole test split.

    .venv/bin/python -m benchmarks.quality [--rows tfidf_lr,majority,minilm,...]
                                           [--cells rt:100,rt:1000,...] [--budget 10m] [--redo]

writes benchmarks/results/quality.json (merged with what earlier runs measured: a cell/row pair
is measured once, its run directory under runs/quality/ reused) and, through summary.py, its
BENCHMARKS.md section. Rows:
  tfidf_lr, majority   scikit-learn on exactly the sweep's training rows (seconds)
  gpt_scratch          our GPT (pretrain_news.yaml architecture and tokenizer), random init
  gpt_news             our GPT pretrained on the news corpus (runs/quality/pretrain_news)
  minilm               all-MiniLM-L6-v2 as it is
  minilm_adapted       MiniLM after task-adaptive masked-LM pretraining on the task's training
                       text (pipeline_minilm_rt.yaml's settings), one adapted model per task; it
                       runs the minilm row's planned sweep (its plan as --set pins), as the main
                       job runs one plan for both: the paired test then compares checkpoints, not
                       plans (two plans of the same architecture differ with the timing probe's
                       noise: tweets 10,000 got 3 epochs as is, 2 adapted)
Needs `make data`. The whole table is hours on 2 CPUs; run it cell by cell.
"""
from __future__ import annotations

import argparse
import json
import sys

from .common import RESULTS, ROOT, ptft as cli, save

OUT = ROOT / "runs" / "quality"
TASKS = {"rt": "data/rotten_tomatoes.parquet", "tweets": "data/health_tweets.parquet"}
CELLS = ["rt:100", "rt:1000", "rt:all", "tweets:100", "tweets:1000", "tweets:10000"]
ROWS = ["tfidf_lr", "majority", "gpt_scratch", "gpt_news", "minilm", "minilm_adapted"]
ADAPT = ["schedule.max_steps=60", "schedule.warmup_steps=6", "train.eval_every=60", "checkpoint.every_steps=60"]


def task_of(cell: str):
    from ptft_ray.config import FinetuneConfig
    from ptft_ray.data.tasks import load_task

    name, n = cell.split(":")
    return load_task(FinetuneConfig(data=TASKS[name], max_examples=0 if n == "all" else int(n)))


def source(row: str, cell: str) -> list[str]:
    """--pretrained (and --arch-from) of a model row."""
    if row == "minilm":
        return ["--pretrained", "data/models/minilm"]
    if row in ("gpt_news", "gpt_scratch"):
        pre = cli("pretrain", "--config", "jobs/configs/pretrain_news.yaml", out=OUT / "pretrain_news")
        return ["--pretrained", pre["checkpoint"]] if row == "gpt_news" else \
            ["--pretrained", "none", "--arch-from", pre["checkpoint"]]
    if row == "minilm_adapted":
        from ptft_ray.data.tasks import task_corpus
        from ptft_ray.config import FinetuneConfig

        name = cell.split(":")[0]
        d = OUT / f"adapt_{name}"
        d.mkdir(parents=True, exist_ok=True)
        corpus = task_corpus(FinetuneConfig(data=TASKS[name]), d / "task_text.parquet")
        sets = [a for s in [f"data.path={corpus}", *ADAPT] for a in ("--set", s)]
        pre = cli("pretrain", "--config", "jobs/configs/pretrain_minilm_rt.yaml", *sets, out=d / "pretrain")
        return ["--pretrained", pre["checkpoint"]]
    raise ValueError(row)


def measure(row: str, cell: str, budget: str) -> dict:
    from ptft_ray.finetune.baseline import baselines

    if row in ("tfidf_lr", "majority"):
        b = baselines(task_of(cell))
        return {**b[row], "n_train": b["n_train"], "n_test": b["n_test"]}
    from ptft_ray.planner import overrides

    name, n = cell.split(":")
    control = run_dir("minilm", cell, budget) / "plan.json"
    same = row == "minilm_adapted" and control.is_file()
    pins = [a for o in (overrides(json.loads(control.read_text())) if same else []) for a in ("--set", o)]
    r = cli("sweep", "--plan", "auto", "--budget", budget, *source(row, cell), "--data", TASKS[name],
            "--set", f"finetune.max_examples={0 if n == 'all' else n}", *pins, "--overwrite",
            out=run_dir(row, cell, budget))
    return {"accuracy": r["test_accuracy"], "accuracy_ci": r["test_accuracy_ci"], "macro_f1": r["test_macro_f1"],
            "n_test": r["test_n"], "budget": budget, "best_config": r["best_config"], "wall_s": r["wall_s"],
            "trials": r["trials"], **({"sweep_of": "minilm"} if same else {})}


def run_dir(row: str, cell: str, budget: str):
    return OUT / f"{row}_{cell.replace(':', '_')}_{budget}"


def stage_effect(cell: str, budget: str) -> dict | None:
    """Continued pretraining's effect in a cell: MiniLM adapted vs as is, McNemar's exact test
    on the same test rows (both sweeps at the same budget); None until both have run."""
    from ptft_ray.finetune.stats import paired

    evs = [run_dir(row, cell, budget) / "evaluation.json" for row in ("minilm_adapted", "minilm")]
    if not all(e.is_file() for e in evs):
        return None
    return {**paired(*(json.loads(e.read_text()) for e in evs)),
            "sweeps": {row: sweep_run(run_dir(row, cell, budget)) for row in ("minilm_adapted", "minilm")}}


def sweep_run(d) -> str:
    """What a planned sweep ran (its plan with the pins on top), in a few words: the paired
    test is like for like where the two read the same."""
    from ptft_ray.config import load_config
    from ptft_ray.planner import planned_config

    p = json.loads((d / "plan.json").read_text())
    sw = planned_config(load_config(None), p, p.get("pins")).sweep
    return (f"{sw.num_samples} x {','.join(sw.strategies)}, {sw.epochs[0]:g} epochs, batch {sw.batch_sizes[0]}, "
            f"scheduler {sw.scheduler}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--redo", action="store_true", help="measure the given pairs again (their old run "
                    "directory is kept beside, suffixed _before)")
    a = ap.parse_args()
    rows, cells = a.rows.split(","), a.cells.split(",")
    for x, known in ((rows, ROWS), (cells, CELLS)):
        bad = sorted(set(x) - set(known))
        if bad:
            sys.exit(f"unknown {bad} (known: {', '.join(known)})")
    old = json.loads((RESULTS / "quality.json").read_text()) if (RESULTS / "quality.json").is_file() else {}
    table = old.get("table", {})
    notes = {"notes": old["notes"]} if old.get("notes") else {}  # written by hand: what was tried per cell
    for cell in cells:
        for row in rows:
            if row in table.get(cell, {}) and not a.redo:
                continue
            run = run_dir(row, cell, a.budget)
            if a.redo and run.is_dir():  # never overwrite an earlier measurement's run directory
                keep, i = run.with_name(run.name + "_before"), 2
                while keep.exists():
                    keep, i = run.with_name(f"{run.name}_before{i}"), i + 1
                run.rename(keep)
            table.setdefault(cell, {})[row] = measure(row, cell, a.budget)
            effect = stage_effect(cell, a.budget) if row in ("minilm", "minilm_adapted") else None
            if effect and "minilm_adapted" in table[cell]:
                table[cell]["minilm_adapted"]["vs_minilm"] = effect
            save("quality", {"table": table, "rows": ROWS, "cells": CELLS, **notes})  # after every pair: resumable
    save("quality", {"table": table, "rows": ROWS, "cells": CELLS, **notes})


if __name__ == "__main__":
    main()
