"""`ptft-ray sweep`: Ray Tune trials over LR, strategy (+ its own parameters), weight decay,
batch size, epochs and pretrained checkpoint; ASHA stops the weak; the best is exported.

Under Train V2, `Tuner(TorchTrainer(...))` fails, so each trial is a function: it either
fits its own TorchTrainer (several workers per trial) or, for one worker, runs the same
loop directly in the trial actor, which skips starting a worker group per trial.

Sweep directory:  DIR/tune/ (Tune's experiment, resumable)  DIR/model/ (best export)
                  DIR/trials.csv  DIR/result.json
"""
from __future__ import annotations

import json
import math
import time

from .. import storage
from ..cluster import DATA_CPUS, check_reachable, cluster_summary, init_ray, train_logging, worker_resources
from ..config import Config
from ..data.tasks import TaskData, load_task
from ..errors import PtftError
from ..train import checkpoint as ckpt
from ..train.context import TuneContext
from ..train.loop import run, train_loop_per_worker
from .evaluate import evaluate_export, headline
from .export import export
from .predictor import scorer
from .results import trial_row, write_trials_csv
from .select import select_best
from .runner import Source, datasets_for, estimate_trial_s, loop_config, resolve_sources
from .progress import SweepProgress, mlflow_callback
from .space import build_space, n_trials, optuna_search, trial_config

def run_trial(params: dict, *, base: dict, sources: dict, datasets: dict, task: TaskData,
              in_process: bool, scaling: dict, storage: str) -> dict | None:
    """One Tune trial: the fine-tune loop from the trial's pretrained checkpoint."""
    from ray import tune

    cfg = trial_config(base, params)
    src: Source = sources[params["checkpoint"]]
    lc = loop_config(cfg, src, task, world=scaling["num_workers"])
    if in_process:
        # everything was reported already; a returned dict would be logged as one more result
        run(lc, TuneContext(datasets[src.key], scaling["use_gpu"]))
        return None
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from ..errors import raise_user_error

    trainer = TorchTrainer(
        train_loop_per_worker, train_loop_config=lc,
        scaling_config=ScalingConfig(**scaling),
        run_config=RunConfig(
            name=f"train-{tune.get_context().get_trial_id()}", storage_path=storage, **train_logging(),
            callbacks=[TuneReportCallback()],
            checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=base["sweep"]["metric"],
                                               checkpoint_score_order=base["sweep"]["mode"])),
        datasets=datasets[src.key])
    try:
        trainer.fit()
    except Exception as e:  # noqa: BLE001
        raise_user_error(e)
    return None


def check_budget(cfg: Config, sources: list[Source], task: TaskData, plan: dict | None = None) -> None:
    """Refuse a time budget smaller than the cheapest possible trial (tokens / the checkpoint's
    carried rate). A plan's own check stands where a plan chose the sweep: the planner refused a
    budget below one trial with its calibrated cost model at a rate it measured live, and this
    cruder estimate (an LM step's cost per token; measured 0.86x of it for MiniLM's `full`
    trials, 0.45x for our GPT's) refused plans that fit (RT all, adapted MiniLM, 20m: 1,311 s
    here vs the plan's 1,009 s). Trials a user's pins lengthen are cut at the budget."""
    budget = cfg.sweep.time_budget_s
    if not budget or plan:
        return
    cheapest = None
    for src in sources:
        for bs in cfg.sweep.batch_sizes:
            for ep in cfg.sweep.epochs:
                trial = trial_config(cfg.to_dict(), {"lr": cfg.sweep.lr_min, "weight_decay": 0.0,
                                                     "batch_size": bs, "epochs": ep, "strategy": "full"})
                est = estimate_trial_s(loop_config(trial, src, task), src)
                if est is not None:
                    cheapest = est if cheapest is None else min(cheapest, est)
    if cheapest is not None and budget < cheapest:
        raise PtftError(f"sweep.time_budget_s={budget:g} is below one trial's estimated {cheapest:.0f} s "
                        f"(from the checkpoint's measured throughput); raise the budget or lower "
                        f"finetune.max_examples / sweep.epochs")


def max_evals(cfg: Config) -> int:
    """ASHA's max_t in evaluations: the longest trial's epochs x evals per epoch (+ the final)."""
    return int(math.ceil(max(cfg.sweep.epochs) * cfg.finetune.evals_per_epoch)) + 1


def trial_resources(cfg: Config, res: dict) -> tuple[bool, dict, dict, int]:
    """-> (in_process, Tune bundle for the trial, Train ScalingConfig kwargs, concurrency)."""
    sw, sc = cfg.sweep, cfg.scaling
    in_process = sw.in_process == "always" or (sw.in_process == "auto" and sw.workers_per_trial == 1)
    if in_process and sw.workers_per_trial != 1:
        raise PtftError("sweep.in_process=always needs sweep.workers_per_trial=1")
    scaling = {"num_workers": sw.workers_per_trial, "use_gpu": sc.use_gpu}
    # trials at a time: what the CPUs allow, and with GPUs no more than the GPUs hold
    # (32 CPUs / 4 GPUs at 1 GPU a trial: 4, not 32)
    gpu_slots = (int(res["gpus"] / (sw.workers_per_trial * sc.gpus_per_worker) + 1e-9)
                 if sc.use_gpu else None)
    if in_process:
        cpus = sw.cpus_per_trial or 1.0
        conc = sw.max_concurrent_trials or max(1, min(int(res["cpus"] // cpus), gpu_slots or 10 ** 9))
        if cpus * conc > res["cpus"] + 1e-9 or cpus > res["max_node_cpus"]:
            raise PtftError(f"sweep: {conc} concurrent trial(s) x {cpus:g} CPU do not fit a cluster of "
                            f"{res['cpus']:g} CPUs (largest node {res['max_node_cpus']:g}); lower "
                            f"sweep.max_concurrent_trials or sweep.cpus_per_trial")
        bundle = {"CPU": cpus}
        if sc.use_gpu:
            worker_resources(1, cpus, True, sc.gpus_per_worker, {**res, "cpus": res["cpus"] + DATA_CPUS},
                             copies=conc, what="sweep")
            bundle["GPU"] = sc.gpus_per_worker
        return True, bundle, scaling, conc
    conc = sw.max_concurrent_trials or max(1, min(int((res["cpus"] - DATA_CPUS) // sw.workers_per_trial),
                                                  gpu_slots or 10 ** 9))
    per_worker = worker_resources(sw.workers_per_trial, sw.cpus_per_trial, sc.use_gpu,
                                  sc.gpus_per_worker, res, copies=conc, what="sweep")
    scaling["resources_per_worker"] = per_worker
    # the trial function only waits on its TorchTrainer: a sliver of CPU
    return False, {"CPU": 0.01}, scaling, conc


def resumable(out: str) -> bool:
    """A sweep directory (local or URI) that `sweep(..., resume=True)` can continue: Tune's
    experiment state is there."""
    return storage.exists(f"{out.rstrip('/')}/tune/tuner.pkl")


def sweep(cfg: Config, pretrained: list[str], out: str | None = None, resume: bool = False,
          overwrite: bool = False, arch_from: str | None = None, plan: dict | None = None) -> dict:
    t0 = time.time()
    run_dir = storage.Run(out or f"runs/{cfg.sweep.name}")
    out_p = run_dir.local  # the driver's files; Tune and Train write to run_dir.where directly
    task = load_task(cfg.finetune)                   # data checked before Ray starts
    sources = resolve_sources(pretrained, cfg, arch_from)
    check_budget(cfg, sources, task, plan)
    init_ray(forward=cfg.cluster.forward_env)
    res = cluster_summary()
    # trials load their checkpoints and write the sweep on any node: refused before anything is replaced
    check_reachable({"--out": run_dir.where, "--pretrained": [s.path or "" for s in sources]}, res["nodes"])
    if run_dir.nonempty() and not resume:
        if not overwrite:
            raise PtftError(f"{run_dir.where} holds a sweep already; use --resume to continue it or "
                            f"--overwrite to replace it")
        run_dir.clear()
    if resume and not resumable(run_dir.where):
        raise PtftError(f"--resume: no sweep to resume in {run_dir.where}")
    run_dir.start()
    if plan is not None:
        (out_p / "plan.json").write_text(json.dumps(plan, indent=2, default=str))
        run_dir.push("plan.json")

    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    in_process, bundle, scaling, conc = trial_resources(cfg, res)
    sw = cfg.sweep
    base = cfg.to_dict()
    if in_process and not base["train"]["threads"]:  # one torch thread per trial CPU
        base["train"]["threads"] = max(1, int(bundle["CPU"]))
    by_tok: dict[str, dict] = {}
    for s in sources:  # one tokenized copy per distinct tokenizer
        if s.tokenizer_json not in by_tok:
            by_tok[s.tokenizer_json] = datasets_for(task, s, cfg.finetune.max_len)
    datasets = {s.key: by_tok[s.tokenizer_json] for s in sources}
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=base, sources={s.key: s for s in sources},
                             datasets=datasets, task=task, in_process=in_process, scaling=scaling,
                             storage=run_dir.uri("train")),
        bundle)
    checkpoints = [s.key for s in sources]
    tune_storage = storage.ray_storage(run_dir.uri("tune"))
    scheduler = (ASHAScheduler(time_attr="training_iteration", max_t=max_evals(cfg),
                               grace_period=sw.grace_period, reduction_factor=sw.reduction_factor)
                 if sw.scheduler == "asha" else FIFOScheduler())
    # a BasicVariantGenerator instance ignores TuneConfig.max_concurrent_trials: bound it here
    search = (optuna_search(sw, checkpoints) if sw.search == "optuna"
              else BasicVariantGenerator(max_concurrent=conc, random_state=sw.seed))
    if resume:
        # the conditional sample_from functions are stored as placeholders: hand them back
        fs, tune_path = storage.resolve(run_dir.uri("tune"))
        tuner = tune.Tuner.restore(tune_path, trainable=trainable, resume_errored=False, storage_filesystem=fs,
                                   param_space=build_space(sw, checkpoints) if sw.search == "random" else None)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=build_space(sw, checkpoints) if sw.search == "random" else None,
            tune_config=tune.TuneConfig(
                metric=sw.metric, mode=sw.mode, scheduler=scheduler, search_alg=search,
                num_samples=sw.num_samples,
                max_concurrent_trials=conc if sw.search == "optuna" else None,
                time_budget_s=sw.time_budget_s or None),
            run_config=tune.RunConfig(
                **tune_storage, verbose=0,
                callbacks=[SweepProgress(sw.metric, sw.mode, n_trials(sw), sw.time_budget_s),
                           *mlflow_callback(cfg.run.mlflow_uri, f"{cfg.sweep.name}:{out_p.name}")],
                # a trial lost with its node (spot preemption) runs again from its checkpoint
                failure_config=tune.FailureConfig(max_failures=sw.max_failures),
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=1, checkpoint_score_attribute=sw.metric, checkpoint_score_order=sw.mode)))
    print(f"[sweep] {sw.num_samples} sample(s), {conc} at a time, "
          f"{'in-process' if in_process else 'TorchTrainer'} trials with {bundle}; sources: {checkpoints}",
          flush=True)
    grid = tuner.fit()
    rows = [trial_row(r, sw.metric, sw.mode, tune_storage.get("storage_filesystem")) for r in grid]
    write_trials_csv(rows, out_p / "trials.csv")
    ok = [r for r in rows if r["best_checkpoint"]]
    if not ok:
        reasons = "; ".join(sorted({r["error"] for r in rows if r["error"]}))[:500]
        raise PtftError(f"sweep {run_dir.where}: no trial produced a checkpoint ({reasons or 'none finished'})")
    gpus = cfg.scaling.gpus_in_use  # re-scoring and testing where trials ran
    best, selection = select_best(ok, sw.metric, sw.mode, cfg.finetune.data, sw.rescore_top_k,
                                  len(task.splits["val"]), task.val_split_size, sw.rescore_val_examples, gpus)
    model_dir = out_p / "model"
    export(best["best_checkpoint"], model_dir, overwrite=True,
           extra_meta={"sweep": {"trial_id": best["trial_id"], "metric": sw.metric,
                                 "best_metric": best["best_metric"]}})
    test = evaluate_export(str(model_dir), cfg.finetune.data, "test", with_baselines=True,
                           probs_fn=scorer(str(model_dir), gpus))
    summary = {
        "best_trial": best["trial_id"], "metric": sw.metric, "mode": sw.mode,
        "best_metric": best["best_metric"], "export_path": run_dir.uri("model"), "selection": selection,
        "best_config": {k: best[k] for k in ("checkpoint", "strategy", "lr", "weight_decay",
                                              "batch_size", "epochs") if k in best},
        "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"], "test_n": test["n"],
        **headline(test),
        "trials_completed": sum(r["stop_reason"] == "completed" for r in rows),
        "trials_stopped": sum(r["stop_reason"] == "stopped" for r in rows),
        "trials_failed": sum(r["stop_reason"] in ("error", "diverged", "oom") for r in rows),
        "trials": len(rows), "trial_time_s": sum(r["wall_s"] or 0 for r in rows),
        "class_balance": task.balance("train"), "task_type": task.task_type,
        "in_process_trials": in_process, "max_concurrent_trials": conc,
        "lineage": {s.key: s.lineage for s in sources}, "data": cfg.finetune.data,
        "wall_s": time.time() - t0, "resumed": resume,
    }
    ckpt.write_json(out_p / "evaluation.json", test)  # the whole test evaluation: confusion matrix too
    ckpt.write_json(out_p / "result.json", summary)
    run_dir.publish()  # a URI run: trials.csv, model/, evaluation.json, then result.json
    return summary

