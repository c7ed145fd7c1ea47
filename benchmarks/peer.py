"""Against the peer a user would pick instead: Hugging Face `Trainer` on the same MiniLM, the
same task (Rotten Tomatoes), the same machine, one run each.

    .venv/bin/python -m benchmarks.peer [--parts speed,search] [--budget 10m]
writes benchmarks/results/peer.json. Needs `make data` (data/models/minilm).

speed   one epoch of full fine-tuning on the same N training snippets, batch B, max_len 48,
        dynamic padding (each batch padded to its longest row) on both sides, AdamW at the same
        LR, one torch thread each, no evaluation while training: HF `Trainer`'s
        train_samples_per_second vs `ptft-ray finetune`'s train_examples_per_s (examples /
        seconds in training steps, on one Ray Train worker). Goal: ours >= 1.0x theirs.
search  `ptft-ray sweep --plan auto --budget` from MiniLM on 1,000 labels, then
        `Trainer.hyperparameter_search(backend="ray")` over the same space for full fine-tuning
        (the plan's LR range, batch size, epochs, weight decays, max_len, validation rows,
        evaluations per epoch), 1 CPU per trial as ours, Tune's time_budget_s = the planned
        sweep's. Each side: seconds from its start until a trial first reports validation
        accuracy >= TF-IDF + LR's on the same validation rows + 5 points, and the test
        accuracy of the model it ends with. Both clear that threshold at their first evaluation,
        so it measures start-up; the goal figure is instead each side's time until a trial first
        reaches the validation accuracy Hugging Face's search ends with (its best trial's best:
        the same number of rows right). Goal: ours <= 0.5x Hugging Face's time to it, never lower
        test accuracy at the end. `--parts rescore` recomputes these from the last search's runs.
Precision: both sides compute in bf16 on a CPU with native bf16 (ours `train.precision: auto`,
Hugging Face `bf16=True`), in fp32 elsewhere; results before 2026-12-04 are fp32 on both sides.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import time

from .common import ROOT, ptft, save

OUT = ROOT / "runs" / "peer"
DATA = "data/rotten_tomatoes.parquet"
MODEL = str(ROOT / "data" / "models" / "minilm")


def task_for(max_examples: int, max_val: int = 0):
    from ptft_ray.config import FinetuneConfig
    from ptft_ray.data.tasks import load_task

    return load_task(FinetuneConfig(data=DATA, max_examples=max_examples, max_val_examples=max_val))


def encoded(tok, task, split: str, max_len: int) -> list[dict]:
    """HF rows: the tokenizer's ids truncated to max_len, no padding (the collator pads)."""
    rows = task.splits[split]
    enc = tok([task.texts[i] for i in rows], truncation=True, max_length=max_len)
    return [{"input_ids": ids, "attention_mask": m, "labels": int(task.labels[i])}
            for ids, m, i in zip(enc["input_ids"], enc["attention_mask"], rows)]


def hf_args(out, **kw):
    """Hugging Face's side computes in bf16 exactly where ours does under train.precision auto
    (a CPU with native bf16): each side in its best precision for this machine."""
    from transformers import TrainingArguments

    from ptft_ray.train.precision import cpu_bf16

    kw.setdefault("bf16", cpu_bf16())
    return TrainingArguments(output_dir=str(out), report_to=[], use_cpu=True, disable_tqdm=True,
                             dataloader_num_workers=0, seed=0, logging_strategy="no", **kw)


def ours(*args: str, out, reuse: bool = False) -> tuple[dict, float]:
    """common.ptft with --overwrite; -> (result.json, the time its command started, taken here
    before the command is launched and kept beside the run for --reuse). Not result.json's
    write time - its wall_s: a sweep's wall_s starts after `--plan auto` has planned (~19 s)."""
    started = out.with_name(out.name + ".started")
    if not (reuse and (out / "result.json").is_file() and started.is_file()):
        started.parent.mkdir(parents=True, exist_ok=True)
        started.write_text(repr(time.time()))
    r = ptft(*args, "--overwrite", out=out, reuse=reuse)
    return r, float(started.read_text())


# ---------------------------------------------------------------- speed


def speed(n: int, batch: int, lr: float, rounds: int = 2) -> dict:
    """`rounds` alternating readings of each side (the machine is shared: one reading of
    either moved by up to 30 % between runs); the ratio is of the means."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer

    task = task_for(n)
    tok = AutoTokenizer.from_pretrained(MODEL)
    torch.set_num_threads(1)
    theirs, mine = [], []
    for _ in range(rounds):
        model = AutoModelForSequenceClassification.from_pretrained(MODEL, num_labels=len(task.label_names))
        trainer = Trainer(model=model, args=hf_args(OUT / "hf_speed", per_device_train_batch_size=batch,
                                                    num_train_epochs=1, learning_rate=lr, eval_strategy="no",
                                                    save_strategy="no", lr_scheduler_type="linear"),
                          train_dataset=encoded(tok, task, "train", 48), data_collator=DataCollatorWithPadding(tok))
        theirs.append(trainer.train().metrics["train_samples_per_second"])
        r, _ = ours("finetune", "--config", "jobs/configs/sweep_rt.yaml", "--pretrained", MODEL, "--data", DATA,
                    "--set", f"finetune.max_examples={n}", "--set", "finetune.epochs=1",
                    "--set", f"train.batch_size={batch}", "--set", "finetune.strategy=full",
                    "--set", f"optim.lr={lr}", "--set", "train.threads=1", "--set", "finetune.max_len=48",
                    "--set", "finetune.evals_per_epoch=1", "--set", "scaling.num_workers=1",
                    "--set", "scaling.cpus_per_worker=1", out=OUT / "ours_speed")
        mine.append(r["train_examples_per_s"])
    hf_mean, ours_mean = sum(theirs) / rounds, sum(mine) / rounds
    ratio = ours_mean / hf_mean
    return {"examples": len(task.splits["train"]), "batch_size": batch, "epochs": 1, "max_len": 48, "threads": 1,
            "lr": lr, "hf_trainer_examples_per_s": hf_mean, "ours_examples_per_s": ours_mean,
            "readings": {"hf_trainer": theirs, "ours": mine}, "ratio": ratio, "goal": ">= 1.0",
            "met": ratio >= 1.0}


def profile_step(steps: int = 18, batch: int = 16) -> dict:
    """The speed miss, split: the same fine-tuning step outside Ray, one thread, fused AdamW on
    both: Hugging Face's model(**batch).loss vs ours (HFClassifier, a bool mask, summed cross
    entropy / n, clip 1.0), on the same padded batches; and AdamW alone, default vs fused."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from ptft_ray.models.hf import HFClassifier

    torch.set_num_threads(1)
    task, tok = task_for(640), AutoTokenizer.from_pretrained(MODEL)
    rows, coll = encoded(tok, task, "train", 48), DataCollatorWithPadding(tok)
    batches = [coll(rows[i:i + batch]) for i in range(0, (steps + 2) * batch, batch)]

    def hf_loss(m, b):
        return m(**b).loss

    def our_loss(m, b):
        return F.cross_entropy(m(b["input_ids"], b["attention_mask"].bool()).float(), b["labels"],
                               reduction="sum") / len(b["labels"])

    def timed(model, loss) -> float:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
        for i, b in enumerate(batches):
            if i == 2:
                t = time.perf_counter()
            loss(model, b).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return (time.perf_counter() - t) / steps * 1000

    out = {"hf_ms_per_step": [], "ours_ms_per_step": []}
    for _ in range(2):  # alternating, twice: the machine is shared
        out["hf_ms_per_step"].append(timed(AutoModelForSequenceClassification.from_pretrained(MODEL, num_labels=2),
                                           hf_loss))
        out["ours_ms_per_step"].append(timed(HFClassifier.build(MODEL, task.label_names, 0, 0.1), our_loss))
    m = AutoModelForSequenceClassification.from_pretrained(MODEL, num_labels=2)
    for p in m.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    for fused in (False, True):
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=fused)
        for _ in range(3):
            opt.step()
        t = time.perf_counter()
        for _ in range(20):
            opt.step()
        out[f"adamw_{'fused' if fused else 'default'}_ms"] = (time.perf_counter() - t) / 20 * 1000
    return out


# ---------------------------------------------------------------- search


def first_hit(trial_glob: str, metric: str, threshold: float, t0: float) -> dict | None:
    """The earliest trial result (Tune's result.json lines) after t0 with metric >= threshold
    (Tune's storage keeps an earlier run's trials beside this one's)."""
    hits = [r for f in glob.glob(trial_glob, recursive=True) for r in map(json.loads, open(f))
            if r.get(metric) is not None and r[metric] >= threshold and r["timestamp"] >= t0]
    return min(hits, key=lambda r: r["timestamp"], default=None)


def first_over(trial_glob: str, metric: str, threshold: float, t0: float) -> float | None:
    """Seconds from t0 to the first trial result with metric >= threshold."""
    hit = first_hit(trial_glob, metric, threshold, t0)
    return hit["timestamp"] - t0 if hit else None


def same_count(accuracy: float, n: int) -> float:
    """The goal's threshold: Hugging Face's final validation accuracy, k of n rows. Half a row
    below it, so that the same k stored in float32 (784/1000 -> 0.78399998) reaches it."""
    return accuracy - 0.5 / n


OURS_GLOB = str(OUT / "ours_sweep" / "tune" / "**" / "result.json")  # Tune's per-trial results
HF_GLOB = str(OUT / "hf_tune" / "hf" / "**" / "result.json")


def with_goal(q: dict, t_ours: float, t_hf: float, metric: str = "val_accuracy") -> dict:
    """The search's figures with the goal's: each side's time from its start to the threshold
    `same_count` sets, their ratio, and whether the goal is met."""
    target = same_count(q["hf_best_val_accuracy"], q["validation_rows"])
    ours_to, hf_to = first_over(OURS_GLOB, metric, target, t_ours), first_over(HF_GLOB, "eval_accuracy", target, t_hf)
    ratio = ours_to / hf_to if ours_to and hf_to else None
    return {**q, "ours": {**q["ours"], "to_hf_best_s": ours_to}, "hf_trainer": {**q["hf_trainer"], "to_hf_best_s": hf_to},
            "time_ratio": ratio, "met": bool(ratio is not None and ratio <= 0.5
                                              and q["ours"]["test_accuracy"] >= q["hf_trainer"]["test_accuracy"])}


def rescore(q: dict) -> dict:
    """The goal's figures again from the stored runs (runs/peer): our command's start is its
    result.json's time less end_s, Hugging Face's its first threshold hit less first_over_threshold_s."""
    t_ours = (OUT / "ours_sweep" / "result.json").stat().st_mtime - q["ours"]["end_s"]
    t_hf = first_hit(HF_GLOB, "eval_accuracy", q["threshold"], 0)["timestamp"] - q["hf_trainer"]["first_over_threshold_s"]
    return with_goal(q, t_ours, t_hf)


def ours_first_split(d, metric: str, threshold: float, t0: float) -> dict | None:
    """Where our time to the threshold went: planning (plan.json's write time - the command's
    start), and the training steps before the evaluation that first crossed it (train_s of
    that report: seconds in training steps, evaluation excluded)."""
    hit = first_hit(str(d / "tune" / "**" / "result.json"), metric, threshold, t0)
    if not hit:
        return None
    return {"plan_s": (d / "plan.json").stat().st_mtime - t0, "steps": hit["step"], "train_s": hit["train_s"]}


def hf_search(space: dict, budget_s: float, task) -> tuple[dict, float]:
    """Trainer.hyperparameter_search(backend="ray") over `space`; -> (figures, start time)."""
    t0 = time.time()
    import numpy as np
    import ray
    import torch
    from ray import tune
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer

    tok = AutoTokenizer.from_pretrained(MODEL)
    train, val = (encoded(tok, task, s, space["max_len"]) for s in ("train", "val"))
    n_labels = len(task.label_names)

    def model_init(trial=None):
        return AutoModelForSequenceClassification.from_pretrained(MODEL, num_labels=n_labels)

    def accuracy(p):
        return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}

    # evaluate (and checkpoint) as often as our trials do: evals_per_epoch times an epoch
    every = max(1, math.ceil(math.ceil(len(train) / space["batch_sizes"][0]) / space["evals_per_epoch"]))
    trainer = Trainer(model_init=model_init, train_dataset=train, eval_dataset=val, compute_metrics=accuracy,
                      data_collator=DataCollatorWithPadding(tok),
                      args=hf_args(OUT / "hf_trials", eval_strategy="steps", eval_steps=every, save_strategy="steps",
                                   save_steps=every, save_total_limit=1, per_device_eval_batch_size=64,
                                   warmup_steps=space["warmup_steps"]))
    lo, hi = space["lr_range"]
    hp = {"learning_rate": tune.loguniform(lo, hi), "weight_decay": tune.choice(space["weight_decays"]),
          "per_device_train_batch_size": tune.choice(space["batch_sizes"]),
          "num_train_epochs": tune.choice(space["epochs"])}
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    best = trainer.hyperparameter_search(
        direction="maximize", backend="ray", hp_space=lambda _: hp, n_trials=64,
        compute_objective=lambda m: m["eval_accuracy"], resources_per_trial={"cpu": 1},
        time_budget_s=budget_s, storage_path=str(OUT / "hf_tune"), name="hf", verbose=0,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="objective",
                                                checkpoint_score_order="max"))
    search_s = time.time() - t0
    analysis = best.run_summary
    trial = analysis.get_best_trial(metric="objective", mode="max", scope="all")
    ck = analysis.get_best_checkpoint(trial, metric="objective", mode="max")
    with ck.as_directory() as d:
        model = AutoModelForSequenceClassification.from_pretrained(glob.glob(f"{d}/checkpoint-*")[0]).eval()
    test = encoded(tok, task, "test", space["max_len"])
    torch.set_num_threads(os.cpu_count())
    collate, right = DataCollatorWithPadding(tok), 0
    with torch.no_grad():
        for i in range(0, len(test), 64):
            b = collate(test[i:i + 64])
            pred = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits.argmax(-1)
            right += int((pred == b["labels"]).sum())
    ray.shutdown()
    # Tune creates every sample up front: the ones the budget never started have no result
    ran = [t for t in analysis.trials if (t.last_result or {}).get("objective") is not None]
    return {"trials": len(ran), "best_config": trial.config,
            "best_val_accuracy": trial.metric_analysis["objective"]["max"], "test_accuracy": right / len(test),
            "test_n": len(test), "search_s": search_s, "wall_s": time.time() - t0,
            "trials_finished": int(np.sum([bool(t.last_result.get("done")) for t in ran]))}, t0


def search(budget: str, labels: int, reuse: bool) -> dict:
    from ptft_ray.finetune.baseline import baselines
    from ptft_ray.train.checkpoint import read_meta

    d = OUT / "ours_sweep"
    mine, t_ours = ours("sweep", "--plan", "auto", "--budget", budget, "--pretrained", MODEL, "--data", DATA,
                        "--set", f"finetune.max_examples={labels}", out=d, reuse=reuse)
    cfg = read_meta(d / "model")["config"]  # the plan's resolved config, as the best trial ran it
    ft, sw = cfg["finetune"], cfg["sweep"]
    plan = json.loads((d / "plan.json").read_text())
    task = task_for(labels, ft["max_val_examples"])
    base_val = baselines(task, "val")["tfidf_lr"]["accuracy"]
    threshold = base_val + 0.05
    space = {"lr_range": sw["lr_ranges"].get("full", [sw["lr_min"], sw["lr_max"]]),
             "weight_decays": sw["weight_decays"], "batch_sizes": sw["batch_sizes"], "epochs": sw["epochs"],
             "max_len": ft["max_len"], "evals_per_epoch": ft["evals_per_epoch"],
             "warmup_steps": cfg["schedule"]["warmup_steps"]}
    theirs, t_hf = hf_search(space, plan["time_budget_s"], task)
    ours_first = first_over(OURS_GLOB, sw["metric"], threshold, t_ours)
    hf_first = first_over(HF_GLOB, "eval_accuracy", threshold, t_hf)
    q = {"labels": labels, "budget": budget, "tune_time_budget_s": plan["time_budget_s"], "space": space,
         "validation_rows": len(task.splits["val"]), "tfidf_lr_val_accuracy": base_val, "threshold": threshold,
         "hf_best_val_accuracy": theirs["best_val_accuracy"],
         "ours": {"best_val_accuracy": mine["best_metric"],
                  "first_over_threshold_s": ours_first, "test_accuracy": mine["test_accuracy"],
                  "first_over_split": ours_first_split(d, sw["metric"], threshold, t_ours),
                  "end_s": (d / "result.json").stat().st_mtime - t_ours,  # command start -> its result
                  "trials": mine["trials"], "best_config": mine["best_config"], "wall_s": mine["wall_s"],
                  "strategies": sw["strategies"]},
         "hf_trainer": {**theirs, "first_over_threshold_s": hf_first},
         "threshold_ratio": ours_first / hf_first if ours_first and hf_first else None,
         "goal": "time to Hugging Face's final validation accuracy <= 0.5x, test accuracy not lower"}
    return with_goal(q, t_ours, t_hf, sw["metric"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="speed,profile,search")
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--labels", type=int, default=1000)
    ap.add_argument("--n", type=int, default=640, help="speed: training examples (one epoch)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reuse", action="store_true", help="search: reuse a finished planned sweep in runs/peer")
    a = ap.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    OUT.mkdir(parents=True, exist_ok=True)
    parts = a.parts.split(",")
    if len(parts) > 1:  # one process per part: a second Trainer in a process that ran one does not pickle
        for part in parts:
            if subprocess.run([sys.executable, "-m", "benchmarks.peer", *sys.argv[1:], "--parts", part],
                              cwd=ROOT).returncode:
                sys.exit(f"benchmarks.peer --parts {part} failed")
        return
    prev = ROOT / "benchmarks" / "results" / "peer.json"
    result = {k: v for k, v in (json.loads(prev.read_text()) if prev.is_file() else {}).items()
              if k in ("speed", "search", "search_before", "speed_before", "speed_before_first_batch", "profile")}
    if parts == ["speed"]:
        result["speed"] = speed(a.n, a.batch, 5e-5)
    elif parts == ["profile"]:
        result["profile"] = profile_step()
    elif parts == ["search"]:
        result["search"] = search(a.budget, a.labels, a.reuse)
    elif parts == ["rescore"]:  # not in the default parts: it reads the last search's runs
        result["search"] = rescore(result["search"])
    else:
        sys.exit(f"--parts: speed, profile, search, rescore (got {a.parts!r})")
    save("peer", {"task": "Rotten Tomatoes, MiniLM (all-MiniLM-L6-v2)", **result})


if __name__ == "__main__":
    main()


def section(r: dict | None) -> list[str]:
    """BENCHMARKS.md's table for this benchmark."""
    if not r:
        return []
    L = ["## Against Hugging Face `Trainer` (`python -m benchmarks.peer`)", "",
         f"{r['task']}: the same model and task on both sides, same machine, one run each (the speed rows: two alternating readings a side, their mean, where it says so).", "",
         "| measure | Hugging Face | ptft_ray | ratio | goal | |", "|---|---|---|---|---|---|"]
    s = r.get("speed")
    if s:
        L.append(f"| fine-tuning examples/s: {s['examples']} snippets, 1 epoch, batch {s['batch_size']}, max_len "
                 f"{s['max_len']}, dynamic padding, {s['threads']} thread | `Trainer` {s['hf_trainer_examples_per_s']:.1f} "
                 f"| `ptft-ray finetune` (1 Ray Train worker) {s['ours_examples_per_s']:.1f} | {s['ratio']:.2f}x | "
                 f">= 1.0x | {'**met**' if s['met'] else '**missed**'} |")
    f = r.get("speed_before_first_batch")
    if f:
        L.append(f"| the same, before the first batch streamed in while the model is built ({f['measured']}, one "
                 f"reading) | {f['hf_trainer_examples_per_s']:.1f} | {f['ours_examples_per_s']:.1f} | {f['ratio']:.2f}x | "
                 f">= 1.0x | **missed** |")
    b = r.get("speed_before")
    if b:
        L.append(f"| the same, before fused AdamW on CPU ({b['measured']}) | {b['hf_trainer_examples_per_s']:.1f} | "
                 f"{b['ours_examples_per_s']:.1f} | {b['ratio']:.2f}x | >= 1.0x | **missed** |")
    q = r.get("search")
    if q:
        h, o = q["hf_trainer"], q["ours"]

        def secs(v):
            return f"{v:.0f} s" if v is not None else "never"
        def ratio_of(v):
            return f"{v:.2f}x" if v is not None else "-"
        if "to_hf_best_s" in o:
            L.append(f"| search, {q['labels']} labels, budget {q['budget']} (Tune time {q['tune_time_budget_s']:.0f} s): time "
                     f"until a trial first reaches the validation accuracy Hugging Face's search ends with "
                     f"({q['hf_best_val_accuracy']:.4f} on the {q['validation_rows']} validation rows; ours ends at "
                     f"{o['best_val_accuracy']:.4f}) | `hyperparameter_search(backend=\"ray\")` {secs(h['to_hf_best_s'])} "
                     f"({h['trials']} trials) | planned sweep {secs(o['to_hf_best_s'])} ({o['trials']} trials) | "
                     f"{ratio_of(q['time_ratio'])} | <= 0.5x | {'**met**' if q['met'] else '**missed**'} |")
        threshold_ratio = q.get("threshold_ratio", q["time_ratio"] if "to_hf_best_s" not in o else None)
        L.append(f"| search: time until a trial first reaches TF-IDF + LR + 5 points ({q['threshold']:.4f}; both "
                 f"reach it at their first evaluation, so this measures start-up) | {secs(h['first_over_threshold_s'])} "
                 f"| {secs(o['first_over_threshold_s'])} | {ratio_of(threshold_ratio)} | - | |")
        L.append(f"| search: test accuracy of the model each ends with | {h['test_accuracy']:.4f} | "
                 f"{o['test_accuracy']:.4f} | {100 * (o['test_accuracy'] - h['test_accuracy']):+.1f} points | not lower "
                 f"| {'**met**' if o['test_accuracy'] >= h['test_accuracy'] else '**missed**'} |")
        sb = r.get("search_before")
        if sb:
            hb, ob = sb["hf_trainer"], sb["ours"]
            L.append(f"| the same search before ({sb['measured']}; plan: {sb['plan']}; {sb.get('clock', '')}): time to the threshold "
                     f"| {secs(hb['first_over_threshold_s'])} | {secs(ob['first_over_threshold_s'])} | "
                     f"{sb['time_ratio']:.2f}x | <= 0.5x | **missed** |")
            L.append(f"| the same search before: test accuracy | {hb['test_accuracy']:.4f} | {ob['test_accuracy']:.4f} | "
                     f"{100 * (ob['test_accuracy'] - hb['test_accuracy']):+.1f} points | not lower | **met** |")
        L += ["", f"Both searches: 2 trials at a time (1 CPU each); ours stops when its planned trials are done "
                  f"({o.get('end_s', o['wall_s']):.0f} s in all), Tune stops Hugging Face's at the time budget ({h['search_s']:.0f} s, "
                  f"{h['trials_finished']} trials finished). Clocks: ours from the sweep command's own start, "
                  f"Hugging Face's from before its imports, tokenization and `ray.init`."]
        if h.get("to_hf_best_s") is not None:
            L += ["", "Reaching it means the same number of validation rows right: our metric is stored in float32 "
                      "(784/1000 reads 0.78399998), so a threshold of Hugging Face's value less 1e-9 read a tie as "
                      "never (the first reading of this run); the threshold is now half a row below "
                      "(`--parts rescore` recomputed it from the stored runs). Searches since 2026-12-04 compute in "
                      "bf16 on both sides on a CPU with native bf16; the speed rows are fp32 on both."]
        L += ["", f"Search space on both sides (the plan's, for full fine-tuning; ours also draws the plan's other "
                  f"strategies: {', '.join(o['strategies'])}): {json.dumps(q['space'])}."
                  + (f" Plan: {q['plan']}." if q.get("plan") else "")]
        if "to_hf_best_s" in o and o["to_hf_best_s"] is None:
            from ptft_ray.finetune.stats import noise

            L += ["", f"Why the time goal is missed: Hugging Face's search ended at {q['hf_best_val_accuracy']:.3f} "
                      f"validation accuracy (its best of {h['trials']} trials, first reached at {secs(h['to_hf_best_s'])}); "
                      f"our planned sweep's {o['trials']} trials ended at {o['best_val_accuracy']:.3f} and never reached "
                      f"it, so there is no time to compare. One run a side: the difference of two readings on "
                      f"{q['validation_rows']} validation rows carries +-{100 * noise(q['hf_best_val_accuracy'], q['validation_rows']):.1f} "
                      f"points of noise (one standard error), and the best of 4 trials' readings is biased upward more "
                      f"than the best of 2. On the test rows our model scored "
                      f"{100 * (o['test_accuracy'] - h['test_accuracy']):+.1f} points against Hugging Face's."]
        split = o.get("first_over_split")
        if split and "to_hf_best_s" not in o:
            L += ["", f"Why the time goal is missed: both sides evaluate at the same steps (the benchmark gives "
                      f"Trainer the plan's evaluations per epoch), and MiniLM on 1,000 labels clears TF-IDF + LR + 5 "
                      f"points at a trial's first evaluation on both, so the time to the threshold is each side's "
                      f"start-up plus the steps to that evaluation: {secs(o['first_over_threshold_s'])} vs "
                      f"{secs(h['first_over_threshold_s'])}. Of ours, the plan took {split['plan_s']:.0f} s (Ray start, the "
                      f"Ray Data scan, 3 timed steps on the live cluster), and the {split['steps']} training steps before "
                      f"the evaluation that crossed took {split['train_s']:.0f} s (two trials side by side): those steps "
                      f"alone are {split['train_s'] / h['first_over_threshold_s']:.2f}x Trainer's whole time, so no cut in "
                      f"start-up reaches 0.5x. The earlier 0.64x came from a plan evaluating 3 times an epoch, where Trainer's "
                      f"first trials crossed later, and from a clock that left out our planning. What the planned sweep buys here is the model it ends with "
                      f"({100 * (o['test_accuracy'] - h['test_accuracy']):+.1f} points on test) and its end: "
                      f"{o.get('end_s', o['wall_s']):.0f} s against Tune's {h['search_s']:.0f} s."]
    p = r.get("profile")
    if p and s and f:
        hf, ours = p["hf_ms_per_step"], p["ours_ms_per_step"]
        w0, w1 = f["ours_first_window"], f["ours_after_first_window"]
        rd = s.get("readings", {})
        L += ["", f"How the speed miss was split and closed. (1) The same step outside Ray, one thread, the same padded "
                  f"batches, fused AdamW on both (`python -m benchmarks.peer --parts profile`): Hugging Face "
                  f"{hf[0]:.0f} / {hf[1]:.0f} ms, ours {ours[0]:.0f} / {ours[1]:.0f} ms (two alternating readings): the "
                  f"model code and the loop's arithmetic cost the same. AdamW alone over MiniLM's parameters: "
                  f"{p['adamw_default_ms']:.0f} ms a step with torch's default (foreach) vs {p['adamw_fused_ms']:.0f} ms "
                  f"fused, which `Trainer` uses by default; the loop uses fused AdamW on CPU too since. (2) Inside the Ray "
                  f"Train worker, logged every 5 steps (`--set train.log_every=5`): the first 5 steps took "
                  f"{w0['train_s']:.2f} s, {100 * w0['data_wait_frac']:.0f} % of it waiting for the first batch (Ray Data's "
                  f"split coordinator starting the read and map tasks), and every later window ran at Trainer's rate "
                  f"(23-25 examples/s). The loop now fetches its first batch on a thread while the model is built: the "
                  f"first 5 steps take {w1['train_s']:.2f} s with {100 * w1['data_wait_frac']:.1f} % waiting, the same "
                  f"batches in the same order (same validation accuracy). Readings now: Trainer "
                  f"{' / '.join(f'{x:.1f}' for x in rd.get('hf_trainer', []))}, ours "
                  f"{' / '.join(f'{x:.1f}' for x in rd.get('ours', []))} examples/s (alternating); the margin "
                  f"({100 * (s['ratio'] - 1):+.1f} %) is smaller than the spread between runs of this machine on other "
                  f"days (Trainer 16.3 to 24.0 examples/s), so read it as parity, not a lead."]
    return L + [""]
