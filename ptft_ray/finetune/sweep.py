"""`ptft-ray sweep`: Ray Tune trials over LR, strategy (+ its own parameters), weight decay,
batch size, epochs and pretrained checkpoint; ASHA stops the weak; the best is exported.

Under Train V2, `Tuner(TorchTrainer(...))` fails, so each trial is a function: it either
fits its own TorchTrainer (several workers per trial) or, for one worker, runs the same
loop directly in the trial actor, which skips starting a worker group per trial.

Sweep directory:  DIR/tune/ (Tune's experiment, resumable)  DIR/model/ (best export)
                  DIR/trials.csv  DIR/result.json  (and what it started with: sweep_dir.py)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from .. import storage
from ..cluster import check_reachable, cluster_summary, init_ray
from ..config import Config
from ..data.tasks import TaskData, load_task
from ..errors import PtftError
from ..train import checkpoint as ckpt
from ..train.context import TuneContext
from ..train.launch import Trials, Workers, fit, fit_trials, trial_resources
from ..train.loop import run
from ..train.spec import Parallel
from .evaluate import blend_export, blend_summary, evaluate_export, headline, model_scorer
from .export import export
from .results import trial_row, write_trials_csv
from .select import select_best
from .backbones import Source, cheapest_trial_s, datasets_for, largest_shape, resolve_sources, run_spec
from .progress import SweepProgress, mlflow_callback
from .space import build_space, n_trials, optuna_search, trial_config
from .sweep_dir import check_started_with, open_sweep_dir, sweep_path

@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a sweep shares, settled (and refused) before the sweep directory is
    touched: the trials' config, how they run, and the memory plan for their workers."""
    cfg: Config
    trials: Trials
    parallel: Parallel | None


def run_trial(params: dict, *, setup: TrialSetup, sources: dict, datasets: dict, task: TaskData,
              storage: str) -> None:
    """One Tune trial: the fine-tune loop from the trial's pretrained checkpoint, in this actor
    (one worker) or on its own TorchTrainer. Returns nothing: everything was reported already,
    and a returned dict would be logged as one more result."""
    from ray import tune

    src: Source = sources[params["checkpoint"]]
    workers = setup.trials.workers
    spec = run_spec(trial_config(setup.cfg, params), src, task, world=workers.num, parallel=setup.parallel)
    if setup.trials.in_process:
        run(spec, TuneContext(datasets[src.key], workers.use_gpu))
        return
    from ray.tune.integration.ray_train import TuneReportCallback

    fit(spec, datasets[src.key], workers, f"{storage}/train-{tune.get_context().get_trial_id()}",
        retries=0, callbacks=(TuneReportCallback(),))


def check_budget(cfg: Config, sources: list[Source], task: TaskData, plan: dict | None = None) -> None:
    """Refuse a time budget smaller than the cheapest possible trial (tokens / the checkpoint's
    carried rate). Where a plan chose the sweep its own, calibrated check stands instead: this
    cruder one refused plans that fit (docs/decisions.md, "One budget check per sweep")."""
    budget = cfg.sweep.time_budget_s
    cheapest = None if not budget or plan else cheapest_trial_s(cfg, sources, task)
    if cheapest is not None and budget < cheapest:
        raise PtftError(f"sweep.time_budget_s={budget:g} is below one trial's estimated {cheapest:.0f} s "
                        f"(from the checkpoint's measured throughput); raise the budget or lower "
                        f"finetune.max_examples / sweep.epochs")


def max_evals(cfg: Config) -> int:
    """ASHA's max_t in evaluations: the longest trial's epochs x evals per epoch (+ the final)."""
    return int(math.ceil(max(cfg.sweep.epochs) * cfg.finetune.evals_per_epoch)) + 1


@dataclass(frozen=True)
class SweepInputs:
    """The task's rows and the resolved checkpoints, read once: a caller that forecasts before
    the sweep (cli, pipeline) hands them on instead of the sweep reading them again."""
    task: TaskData
    sources: list[Source]

    @classmethod
    def load(cls, cfg: Config, pretrained: list[str], arch_from: str | None = None) -> "SweepInputs":
        return cls(load_task(cfg.finetune), resolve_sources(pretrained, cfg, arch_from))


def sweep(cfg: Config, pretrained: list[str], out: str | None = None, resume: bool = False,
          overwrite: bool = False, arch_from: str | None = None, plan: dict | None = None,
          forecast: dict | None = None, inputs: SweepInputs | None = None) -> dict:
    """forecast: what the sweep is expected to reach (planner.forecast), over the plan's own;
    inputs: the task and sources already read from `cfg` and `pretrained` (else read here)."""
    t0 = time.time()
    run_dir = storage.Run(sweep_path(cfg, out))
    inputs = inputs or SweepInputs.load(cfg, pretrained, arch_from)   # data checked before Ray starts
    task, sources = inputs.task, inputs.sources
    check_budget(cfg, sources, task, plan)
    if resume:
        check_started_with(run_dir.where, cfg, [s.key for s in sources],
                           "resume it with those settings, or use --overwrite to start again")
    init_ray(forward=cfg.cluster.forward_env)
    res = cluster_summary()
    # trials load their checkpoints and write the sweep on any node: refused before anything is replaced
    check_reachable({"--out": run_dir.where, "--pretrained": [s.path or "" for s in sources]}, res["nodes"])
    setup = trial_setup(cfg, inputs, res)  # a sweep that cannot run is refused before the directory is touched
    stopper = noise_stopper(cfg, task, setup.trials.workers)
    open_sweep_dir(run_dir, resume, overwrite, plan, cfg, sources)
    grid = run_trials(setup, inputs, run_dir, resume, stopper)
    fs = storage.ray_storage(run_dir.uri("tune")).get("storage_filesystem")  # resolved once, not per trial
    rows = [trial_row(r, cfg.sweep.metric, cfg.sweep.mode, fs) for r in grid]
    write_trials_csv(rows, run_dir.local / "trials.csv")
    summary = export_best(cfg, rows, task, run_dir)
    summary.update({
        "class_balance": task.balance("train"), "task_type": task.task_type,
        "in_process_trials": setup.trials.in_process, "max_concurrent_trials": setup.trials.concurrent,
        "lineage": {s.key: s.lineage for s in sources}, "data": cfg.finetune.data,
        "wall_s": time.time() - t0, "resumed": resume,
        **({"stopping": stopper.summary(resumed=resume)} if stopper else {}),
        **forecast_and_realised(plan, forecast, summary["test_accuracy"],
                                (summary.get("blend") or {}).get("test_accuracy_model_alone"))})
    ckpt.write_json(run_dir.local / "result.json", summary)
    run_dir.publish()  # a URI run: trials.csv, model/, evaluation.json, then result.json
    return summary


def trial_setup(cfg: Config, inputs: SweepInputs, res: dict) -> TrialSetup:
    """The trials' resources and memory plan on this cluster; in-process trials get one torch
    thread per CPU of their bundle."""
    trials = trial_resources(cfg, res)
    parallel = sweep_memory(cfg, inputs.sources, inputs.task, trials.workers, res)
    if trials.in_process and not cfg.train.threads:
        cfg = replace(cfg, train=replace(cfg.train, threads=max(1, int(trials.bundle["CPU"]))))
    return TrialSetup(cfg, trials, parallel)


def sweep_memory(cfg: Config, sources: list[Source], task: TaskData, workers: Workers, res: dict) -> Parallel:
    """The memory plan at the largest batch the sweep draws, for its largest backbone; a batch
    size that does not fit a device is refused (sweeps do not change their batch sizes)."""
    from ..train.memory import device_memory, resolve

    biggest = largest_shape(sources, len(task.label_names))
    top = replace(cfg, train=replace(cfg.train, batch_size=max(cfg.sweep.batch_sizes)))
    parallel, fitted, plan = resolve(top, biggest, workers.num, cfg.finetune.max_len, device_memory(cfg.scaling, res))
    if fitted.train.batch_size < top.train.batch_size:
        raise PtftError(f"sweep.batch_sizes: {top.train.batch_size} does not fit a device "
                        f"({plan['per_device_bytes']['total'] / 2 ** 30:.1f} GiB needed); the largest that fits is "
                        f"{fitted.train.batch_size}")
    return parallel


def noise_stopper(cfg: Config, task: TaskData, workers: Workers):
    """sweep.stop_on_noise's stopper (finetune/stopping.py), told how many evaluations a
    complete trial reports (the loop's own step arithmetic); None where it is off."""
    if not cfg.sweep.stop_on_noise:
        return None
    from ..train.spec import Steps
    from .stopping import NoiseStopper

    per_step = cfg.sweep.batch_sizes[0] * cfg.train.grad_accum * workers.num
    st = Steps.from_epochs(len(task.splits["train"]), per_step, cfg.sweep.epochs[0], cfg.finetune.evals_per_epoch,
                           where=task.path)
    return NoiseStopper(cfg.sweep.metric, cfg.sweep.mode, len(task.splits["val"]), st.evaluations, n_trials(cfg.sweep))


def forecast_and_realised(plan: dict | None, forecast: dict | None, test: float, alone: float | None = None) -> dict:
    """result.json's `forecast` (the caller's, else the plan's) and `realised`, side by side for
    benchmarks.forecast. alone: the fine-tuned model's own test accuracy where the export blends
    it with TF-IDF + LR; the forecast prices the model alone, so it is checked against that."""
    pred = forecast or (plan or {}).get("forecast")
    real = {"test_accuracy": test}
    if alone is not None:
        real["model_alone_test_accuracy"] = alone
    if pred:
        lo, mid, hi = pred["test_accuracy"]
        ref = test if alone is None else alone
        real.update(within_interval=lo <= ref <= hi, error_points=round(100 * (mid - ref), 2))
    return {"forecast": pred, "realised": real}


def run_trials(setup: TrialSetup, inputs: SweepInputs, run_dir: storage.Run, resume: bool, stopper=None):
    """The Tune experiment: one tokenized copy of the data per distinct tokenizer, the search
    space, ASHA (or FIFO), the progress and MLflow callbacks. -> Tune's ResultGrid."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    cfg, trials, sources, task = setup.cfg, setup.trials, inputs.sources, inputs.task
    sw = cfg.sweep
    by_tok: dict[str, dict] = {}
    for s in sources:
        if s.tokenizer_json not in by_tok:
            by_tok[s.tokenizer_json] = datasets_for(task, s, cfg.finetune.max_len)
    checkpoints = [s.key for s in sources]
    trainable = tune.with_parameters(
        run_trial, setup=setup, sources={s.key: s for s in sources},
        datasets={s.key: by_tok[s.tokenizer_json] for s in sources}, task=task, storage=run_dir.uri("train"))
    scheduler = (ASHAScheduler(time_attr="training_iteration", max_t=max_evals(cfg),
                               grace_period=sw.grace_period, reduction_factor=sw.reduction_factor)
                 if sw.scheduler == "asha" else FIFOScheduler())
    search = (optuna_search(sw, checkpoints) if sw.search == "optuna"
              else BasicVariantGenerator(max_concurrent=trials.concurrent, random_state=sw.seed))
    print(f"[sweep] {sw.num_samples} sample(s), {trials.concurrent} at a time, "
          f"{'in-process' if trials.in_process else 'TorchTrainer'} trials with {trials.bundle}; "
          f"sources: {checkpoints}", flush=True)
    return fit_trials(
        trainable, trials.bundle, run_dir.uri("tune"), metric=sw.metric, mode=sw.mode, concurrent=trials.concurrent,
        param_space=build_space(sw, checkpoints) if sw.search == "random" else None,
        search=search, scheduler=scheduler, num_samples=sw.num_samples, time_budget_s=sw.time_budget_s,
        callbacks=(SweepProgress(sw.metric, sw.mode, n_trials(sw), sw.time_budget_s),
                   *mlflow_callback(cfg.run.mlflow_uri, f"{cfg.sweep.name}:{run_dir.local.name}"),
                   *([stopper] if stopper else [])),
        max_failures=sw.max_failures, resume=resume, stop=stopper, in_process=trials.in_process)


def export_best(cfg: Config, rows: list[dict], task: TaskData, run_dir: storage.Run) -> dict:
    """The best trial (re-scored where the metric was noisy) exported to DIR/model and tested."""
    sw, out_p = cfg.sweep, run_dir.local
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
    probs_fn = model_scorer(str(model_dir), gpus)
    blended = blend_export(cfg, task, str(model_dir), probs_fn)
    test = evaluate_export(str(model_dir), cfg.finetune.data, "test", with_baselines=True, probs_fn=probs_fn)
    ckpt.write_json(out_p / "evaluation.json", test)  # the whole test evaluation: confusion matrix too
    return {
        **blend_summary(blended, test),
        "best_trial": best["trial_id"], "metric": sw.metric, "mode": sw.mode,
        "best_metric": best["best_metric"], "export_path": run_dir.uri("model"), "selection": selection,
        "best_config": {k: best[k] for k in ("checkpoint", "strategy", "lr", "weight_decay",
                                              "batch_size", "epochs") if k in best},
        "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"], "test_n": test["n"],
        **headline(test),
        "trials_completed": sum(r["stop_reason"] == "completed" for r in rows),
        "trials_stopped": sum(r["stop_reason"] == "stopped" for r in rows),
        "trials_failed": sum(r["stop_reason"] in ("error", "diverged", "oom") for r in rows),
        "trials": len(rows), "trial_time_s": sum(r["wall_s"] or 0 for r in rows)}
