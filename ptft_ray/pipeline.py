"""The end-to-end pipeline: pretrain -> plan -> sweep -> evaluate -> report, one job.

    python jobs/pipeline.py --config jobs/configs/pipeline_minilm_rt.yaml --out runs/main
    ray job submit --working-dir . -- python jobs/pipeline.py --config ... --out ...

RUN_DIR/pretrain/          the pretraining run (resumable)
RUN_DIR/plan.json          the planner's choices and reasons (when a budget is set)
RUN_DIR/sweep_pretrained/  the sweep from the pretrained checkpoint (+ plan.json, evaluation.json)
RUN_DIR/sweep_base/        the same planned sweep from the model pretraining started from
                           (a Hugging Face model.hf: what continued pretraining added; optional)
RUN_DIR/sweep_scratch/     the same planned sweep from random init (what pretraining added; optional)
RUN_DIR/task_text.parquet  adapt_on_task: the task's training texts, unlabeled, as the corpus
RUN_DIR/summary.json       the headline: best model, its interval, baselines, stage effects
RUN_DIR/manifest.json      what ran, where it is, lineage, versions, timings
RUN_DIR/report/index.html  the report (ptft-ray report RUN_DIR)

Re-running the same command continues: a finished stage is reused, an interrupted one resumes.
RUN_DIR may be a URI (s3://bucket/run): the stages write there directly, the pipeline's own
files (manifest, plan, summary, task text, compress stages) are staged locally and published.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from . import storage
from .config import load_config
from .data.tasks import task_corpus
from .manifest import Manifest
from .pipeline_plan import RERUN, check_plan_first, check_rerun, plan_stage
from .pipeline_config import PipelineConfig, load_pipeline_config
from .errors import PtftError
from .train.checkpoint import write_json


def _pretrain_once(cfg, out: str) -> dict:
    """A finished run with the same config is reused as is; anything else goes to pretrain()
    (which resumes an interrupted run and refuses an incompatible one)."""
    from .train.pretrain import pretrain

    done, saved = f"{out}/result.json", f"{out}/config.yaml"
    if storage.is_file(done) and storage.is_file(saved) and yaml.safe_load(storage.read_text(saved)) == cfg.to_dict():
        res = storage.read_json(done)
        if res.get("steps") == cfg.schedule.max_steps and res.get("checkpoint") and storage.exists(res["checkpoint"]):
            print(f"[pipeline] reusing finished pretraining {out}", flush=True)
            return res
    return pretrain(cfg, str(out))


def _timed(fn):
    t0 = time.time()
    out = fn()
    return out, time.time() - t0


def run_pipeline(config: str | None, out: str = "runs/pipeline", overrides: list[str] | None = None) -> dict:
    from .report import report

    pc = load_pipeline_config(config, overrides)
    run = storage.Run(out)   # a URI: a missing bucket fails here, before anything starts
    run.pull("manifest.json", "plan.json")  # a remote run's own files, to continue it
    root = run.local
    scfg, pcfg = _configs(pc, run)   # every config is checked before anything starts
    check_rerun(pc, scfg, run)
    check_plan_first(pc, scfg, pcfg, run)
    root.mkdir(parents=True, exist_ok=True)
    man = Manifest(run, pc)
    pre = _pretrain_stage(pcfg, run, man)
    scfg, the_plan = plan_stage(pc, scfg, pre["checkpoint"], run, man)
    results, evals = _sweep_stages(pc, pcfg, scfg, pre["checkpoint"], the_plan, run, man)
    head = headline(results["sweep_pretrained"], evals, "continued pretraining" if pcfg.model.hf else "pretraining")
    write_json(root / "summary.json", {"headline": head})  # the report opens with it
    best = storage.localize(results["sweep_pretrained"]["export_path"], "export")  # compress stages read it here
    extra = _compress_stages(pc, root, best, evals["sweep_pretrained"], man, scfg)
    run.publish(last="summary.json")  # a URI run: its staged files up before the report reads the store
    page, t = _timed(lambda: report(run.where))
    man.stage("report", page, "done", t)
    summary = {"pretrain": {k: pre[k] for k in ("val_perplexity", "unigram_val_perplexity", "val_loss",
                                                "tokens_per_s", "steps", "tokens", "checkpoint", "wall_s")},
               "data": pc.data, "plan": the_plan and {k: the_plan[k] for k in (
                   "strategies", "num_trials", "estimated_cost_s", "budget_s")},
               **{n.replace("sweep_", ""): {k: r[k] for k in ("test_accuracy", "test_macro_f1", "best_metric",
                                                              "best_config", "export_path", "trial_time_s", "wall_s")}
                  for n, r in results.items()},
               "headline": head, **extra, "manifest": run.uri("manifest.json"), "report": page}
    (root / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    run.push("summary.json")
    _print_summary(pre, results, head, page)
    return summary


def _configs(pc: PipelineConfig, run: storage.Run):
    """-> (the sweep config, the pretraining config), both loaded and checked. adapt_on_task:
    the corpus is the task's training text, written beside the run (never a val / test row)."""
    scfg = load_config(pc.sweep_config, [f"finetune.data={pc.data}", *pc.sweep_set])
    pre_set = list(pc.pretrain_set)
    if pc.adapt_on_task:
        run.local.mkdir(parents=True, exist_ok=True)
        corpus = task_corpus(scfg.finetune, run.local / "task_text.parquet")
        if run.remote:  # every node's Ray Data tasks read it from the store
            run.push("task_text.parquet")
            corpus = run.uri("task_text.parquet")
        pre_set.append(f"data.path={corpus}")
    pcfg = load_config(pc.pretrain_config, pre_set)
    if pc.base_control and not pcfg.model.hf:
        raise PtftError(f"pipeline.base_control: {pc.pretrain_config} pretrains from scratch (no model.hf), "
                        f"so there is no un-adapted model to compare with; set base_control: false")
    return scfg, pcfg


def _pretrain_stage(pcfg, run: storage.Run, man: Manifest) -> dict:
    from .train.checkpoint import read_meta

    pre, t = _timed(lambda: _pretrain_once(pcfg, run.uri("pretrain")))
    ck = pre["checkpoint"]
    meta = read_meta(ck)
    man.d["lineage"]["pretrained"] = {"path": ck, "step": meta["state"]["step"], "config_hash": pcfg.hash(),
                                      "corpus": pcfg.data.path, "tokens": pre["tokens"]}
    man.stage("pretrain", run.uri("pretrain"), "done", t, val_perplexity=pre["val_perplexity"],
              unigram_val_perplexity=pre["unigram_val_perplexity"], tokens_per_s=pre["tokens_per_s"])
    return pre


def _sweep_stages(pc: PipelineConfig, pcfg, scfg, ck: str, the_plan, run: storage.Run, man: Manifest):
    """The sweep from the checkpoint and its controls, each evaluated on the test rows with
    its baselines; a finished one is reused. -> (results, evaluations) by sweep name."""
    from .finetune.evaluate import evaluate_export
    from .finetune.sweep import SweepInputs, sweep
    from .finetune.sweep_dir import check_started_with, resumable

    runs = [("sweep_pretrained", [ck], None)]
    runs += [("sweep_base", [pcfg.model.hf], None)] if pc.base_control else []
    runs += [("sweep_scratch", ["none"], ck)] if pc.scratch_baseline else []
    evals, results = {}, {}
    for name, sources, arch_from in runs:
        d = run.uri(name)
        check_started_with(d, scfg, sources, RERUN)
        if storage.is_file(f"{d}/result.json"):
            print(f"[pipeline] reusing finished sweep {d}", flush=True)
            res, t = storage.read_json(f"{d}/result.json"), 0.0
        else:
            inputs = SweepInputs.load(scfg, sources, arch_from)
            fc = _forecast(scfg, inputs, the_plan, adapted=name == "sweep_pretrained" and bool(pcfg.model.hf))
            res, t = _timed(lambda: sweep(scfg, sources, d, resume=resumable(d), arch_from=arch_from, plan=the_plan,
                                          forecast=fc, inputs=inputs))
        results[name] = res
        man.stage(name, d, "done", t, test_accuracy=res["test_accuracy"], best_config=res["best_config"],
                  trials=res["trials"], trial_time_s=res["trial_time_s"])
        ev, t = storage.read_json(f"{d}/evaluation.json") if storage.is_file(f"{d}/evaluation.json") else {}, 0.0
        if "rows" not in ev or "baseline" not in ev:  # a sweep finished by an older ptft_ray
            ev, t = _timed(lambda: evaluate_export(res["export_path"], pc.data, "test", with_baselines=True))
            storage.write_text(f"{d}/evaluation.json", json.dumps(ev, indent=2, default=str))
        evals[name] = ev
        man.stage(f"evaluate_{name}", f"{d}/evaluation.json", "done", t, accuracy=ev["accuracy"],
                  macro_f1=ev["macro_f1"], n=ev["n"])
        man.d["lineage"][name] = {"export": res["export_path"], "from": res.get("lineage")}
        man.write()
    return results, evals


def _forecast(scfg, inputs, the_plan, adapted: bool) -> dict:
    """Each sweep's forecast: the plan's (or one from the sweep's config), moved by continued
    pretraining's expected gain for the sweep from the adapted model."""
    from .planner import forecast

    fc = (the_plan or {}).get("forecast") or forecast.for_sweep(scfg, inputs)
    return forecast.after_continued_pretraining(fc) if adapted and "continued_pretraining" in fc else fc


def _compress_stages(pc: PipelineConfig, root: Path, best: str, best_eval: dict, man: Manifest, scfg) -> dict:
    """distill / quantize / explain the best export, as the pipeline config asks; what workers
    read or write (the transfer set, the student's run) lives where the run does."""
    from .compress import stages

    out, run = {}, man.run
    if pc.distill:
        unlabeled = None
        if pc.distill_unlabeled:
            unlabeled = task_corpus(scfg.finetune, root / "task_text.parquet")
            if run.remote:
                run.push("task_text.parquet")
                unlabeled = run.uri("task_text.parquet")
        r, t = _timed(lambda: stages.distill_stage(best, pc.distill, pc.data, run.uri("distill"), unlabeled,
                                                   pc.distill_temperature, pc.distill_alpha, pc.distill_set))
        out["distill"] = {k: r[k] for k in ("student_accuracy", "teacher_accuracy", "points_lost", "speedup", "model")}
        man.stage("distill", run.uri("distill"), "done", t, **out["distill"])
        man.d["lineage"]["distill"] = {"teacher": best, "student": pc.distill, "export": r["model"]}
    if pc.quantize:
        r, t = _timed(lambda: stages.quantize_stage(best, pc.quantize, pc.data, root, best_eval))
        out["quantize"] = {k: r[k] for k in ("method", "int8_accuracy", "points_lost", "speedup", "size_ratio", "path")}
        man.stage("quantize", r["path"], "done", t, **{k: v for k, v in out["quantize"].items() if k != "path"})
        man.d["lineage"]["quantize"] = {"from": best, "export": r["path"], "method": pc.quantize}
    if pc.explain:
        r, t = _timed(lambda: stages.explain_stage(best, best_eval, pc.data, root, pc.explain,
                                                   gpus=scfg.scaling.gpus_in_use))
        out["explain"] = {k: r[k] for k in ("n", "frac_relative_delta_under_5pct", "deletion_top3_prob_drop",
                                             "deletion_random3_prob_drop")}
        man.stage("explain", str(root / "explain.json"), "done", t, **out["explain"])
    return out


def headline(best: dict, evals: dict, stage: str) -> dict:
    """The best model (the sweep from the pretrained checkpoint), its 95 % interval, the
    baselines and what each stage added: McNemar's exact test on the same test rows."""
    from .finetune.evaluate import headline as of_evaluation
    from .finetune.stats import paired, run_headline

    effects = {}
    ours = evals["sweep_pretrained"]
    if "sweep_base" in evals:
        effects[stage] = paired(ours, evals["sweep_base"])
    if "sweep_scratch" in evals:
        effects["pretrained vs random init"] = paired(ours, evals["sweep_scratch"])
    # the evaluation's figures: a sweep finished by an older ptft_ray has none in its result.json
    return run_headline({**best, **of_evaluation(ours), "test_n": ours["n"]}, effects)


def _print_summary(pre: dict, results: dict, head: dict, page: str) -> None:
    from .finetune.stats import in_words

    print("\n== ptft_ray pipeline ==")
    beaten = "beaten" if pre["val_perplexity"] < pre["unigram_val_perplexity"] else "NOT beaten"
    print(f"pretraining: val perplexity {pre['val_perplexity']:.1f} (unigram level "
          f"{pre['unigram_val_perplexity']:.1f}: {beaten}), {pre['steps']} steps, {pre['tokens_per_s']:.0f} tokens/s")
    print(f"{'':24}{'test acc':>10}{'95% interval':>18}{'macro F1':>10}{'sweep s':>10}")
    for name, r in results.items():
        lo, hi = r.get("test_accuracy_ci") or (float("nan"), float("nan"))
        print(f"{name:24}{r['test_accuracy']:10.4f}{f'{lo:.3f}-{hi:.3f}':>18}{r['test_macro_f1']:10.4f}"
              f"{r['wall_s']:10.0f}")
    for name, b in (head.get("baseline") or {}).items():
        if isinstance(b, dict):
            lo, hi = b["accuracy_ci"]
            print(f"{'baseline ' + name:24}{b['accuracy']:10.4f}{f'{lo:.3f}-{hi:.3f}':>18}{b['macro_f1']:10.4f}")
    for stage, test in head["effects"].items():
        print(in_words(stage, test))
    print(f"report: {page}")
