"""`ptft-ray distill`: a smaller, faster student trained on Ray Train DDP from a fine-tuned
teacher's probabilities (distill_task.py), then exported like any fine-tuned model.

    1. The split is the teacher's own (its finetune settings on --data), so the student is
       tested on exactly the rows the teacher never trained on.
    2. Transfer set = the teacher's training rows (with their labels) + --unlabeled texts
       (label -1; any text equal to one of the task's rows is dropped), read and shuffled by
       Ray Data. Teacher probabilities for all of it come from one Ray Data batch-inference
       pass (serve/batch.py), appended to OUT/teacher_probs.parquet, from which the student's
       rows stream (tokenized in Ray Data tasks): the driver never holds the transfer set.
    3. Student: `layers:K` keeps K of the teacher's layers, evenly spaced, with its
       embeddings and head (DistilBERT kept every other layer: layers:3 of MiniLM's 6);
       or a Hugging Face model directory (its own tokenizer; the teacher's labels).
    4. Train (full fine-tuning of the student, the teacher's LR / epochs unless --set),
       export OUT/model, evaluate teacher and student on the test rows, time both.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from .. import storage
from ..config import Config
from ..data.tasks import load_task
from ..errors import PtftError
from ..finetune.backbones import hf_source
from ..train import checkpoint as ckpt
from ..train.spec import Parallel, Steps
from .student import student_from_layers, student_kind


def _speed(model_dir: str, texts: list[str], batch_size: int) -> float:
    """Rows/s of one model on one thread (what a CPU replica gets)."""
    import torch

    from ..finetune.predictor import Predictor

    torch.set_num_threads(1)
    p = Predictor(model_dir)
    p.probs(texts[:batch_size], batch_size)  # warm-up
    t = time.perf_counter()
    p.probs(texts, batch_size)
    return len(texts) / (time.perf_counter() - t)


def distill(teacher: str, student: str, data: str, out: str, unlabeled: str | None = None,
            temperature: float | list[float] = 2.0, alpha: float | list[float] = 0.5,
            overrides: list[str] | None = None, overwrite: bool = False) -> dict:
    """One (temperature, alpha): a Ray Train run (scaling.num_workers DDP workers). Several
    values of either: a Ray Tune grid over them (one in-process trial each), best on
    validation kept."""
    t0 = time.time()
    run = storage.Run(out)  # a local directory or a URI (staged here, published at the end)
    grid = _grid(temperature, alpha)
    refusal = f"--teacher {teacher}: not an fp32 fine-tuned classifier export"
    teacher_cfg, meta = ckpt.read_config(teacher, "cls", refusal, teacher)
    if meta.get("quantized"):
        raise PtftError(refusal)
    if run.nonempty() and not overwrite:
        raise PtftError(f"--out {out} exists; use another --out or --overwrite")
    teacher_local = storage.localize(teacher, "--teacher")  # a URI: fetched once into the cache
    labels = meta["task_info"]["labels"]
    cfg, task = _student_config(teacher_cfg, labels, data, overrides)
    kind, cfg, source = student_kind(student, cfg, teacher_local, teacher_hf=bool(teacher_cfg.model.hf))
    from .transfer import unlabeled_source

    extra = unlabeled_source(unlabeled, cfg.finetune.text_column)  # fails here, before Ray
    from ..cluster import check_reachable, cluster_summary, init_ray, model_paths

    init_ray(forward=cfg.cluster.forward_env)
    res = cluster_summary()
    # the teacher travels through the object store; workers read the rest on any node
    check_reachable({"--out": out, "--unlabeled": unlabeled or "",
                     "--student": model_paths(student) if kind == "dir" else []}, res["nodes"])
    slots = _slots(cfg, res, len(grid))
    if overwrite and run.nonempty():  # every input checked, the run schedulable: only now does the old run go
        run.clear()
    out_p = run.start()
    if kind == "layers":  # saved in the run, where every worker can read it (pushed when the run is a URI)
        student_from_layers(teacher_local, int(student.split(":")[1]), out_p / "student_init")
        run.push("student_init")
    if kind != "preset":  # (read here, loaded by the workers: a URI they fetch, or a path)
        source = hf_source(str(out_p / "student_init") if kind == "layers" else storage.localize(student, "--student"),
                           run.uri("student_init") if kind == "layers" else student)
    probs_at, n_rows, n_unlabeled = _teacher_probs(cfg, task, extra, teacher_local, run)
    # the student trains on Ray Train: the classification loop with the distillation loss
    if len(grid) == 1:
        (temperature, alpha), trials = grid[0], None
        best = _train(cfg, source, task, probs_at, n_rows, labels, temperature, alpha, run,
                      slots).best_checkpoints[0][0]
        best_path = storage.to_uri(best.filesystem, best.path)
    else:
        best_path, (temperature, alpha), trials = _sweep(cfg, source, task, probs_at, n_rows, labels, grid, run,
                                                         slots)
    summary = _export_and_compare(best_path, teacher, teacher_local, student, data, task, cfg, run,
                                  {"temperature": temperature, "alpha": alpha})
    summary.update({"transfer_rows": n_rows, "unlabeled_rows": n_unlabeled,
                    **({"trials": trials} if trials else {}), "wall_s": round(time.time() - t0, 1)})
    (out_p / "result.json").write_text(json.dumps(summary, indent=2))
    run.publish()
    return summary


def _grid(temperature, alpha) -> list[tuple[float, float]]:
    """Every (temperature, alpha) asked for, each checked."""
    temps = [float(x) for x in (temperature if isinstance(temperature, list) else [temperature])]
    alphas = [float(x) for x in (alpha if isinstance(alpha, list) else [alpha])]
    if not temps or min(temps) <= 0:
        raise PtftError(f"--temperature {temperature}: each value must be > 0")
    if not alphas or not all(0 <= a <= 1 for a in alphas):
        raise PtftError(f"--alpha {alpha}: each value must be between 0 and 1")
    return [(t, a) for t in temps for a in alphas]


def _student_config(teacher_cfg: Config, labels: list[str], data: str, overrides: list[str] | None):
    """The teacher's own settings (full fine-tuning on --data), with the user's --set on top;
    -> (config, the task with the teacher's labels and split)."""
    from ..config import parse_sets, with_values

    cfg = with_values(teacher_cfg, {"finetune.data": data, "finetune.strategy": "full", **parse_sets(overrides or [])})
    return cfg, load_task(cfg.finetune, label_names=labels)


def _teacher_probs(cfg: Config, task, extra, teacher_local: str, run: storage.Run) -> tuple[str, int, int]:
    """The teacher's probabilities for the whole transfer set: one Ray Data pass (read ->
    shuffle -> an actor pool scoring with the teacher), appended batch by batch to
    OUT/teacher_probs.parquet; the driver never holds the transfer set.
    -> (where workers read it, rows, unlabeled rows)."""
    from ..serve.batch import scored, write_parquet
    from .transfer import count_unlabeled, transfer_dataset

    out_p = run.local
    transfer, _ = scored(transfer_dataset(task, extra, cfg.finetune.split_seed + 3), teacher_local,
                         gpus_per_actor=cfg.scaling.gpus_in_use, rename={"label": "input_label"})
    n_rows, _, _ = write_parquet(transfer, str(out_p / "teacher_probs.parquet"), "the transfer set")
    n_unlabeled = count_unlabeled(out_p / "teacher_probs.parquet")
    run.push("teacher_probs.parquet")  # where every node's Ray Data tasks can read it
    probs_at = run.uri("teacher_probs.parquet") if run.remote else str(out_p / "teacher_probs.parquet")
    return probs_at, n_rows, n_unlabeled


def _export_and_compare(best_path: str, teacher: str, teacher_local: str, student: str, data: str, task,
                        cfg: Config, run: storage.Run, chosen: dict) -> dict:
    """Export OUT/model; evaluate teacher and student on the same test rows; time both."""
    from ..finetune.evaluate import blend_export, blend_summary, evaluate_export, model_scorer
    from ..finetune.export import export, load_finetuned
    from ..finetune.stats import paired
    from ..models import count_params

    gpus = cfg.scaling.gpus_in_use  # scored on GPUs where the student trained on them
    model_dir = export(best_path, run.local / "model",
                       extra_meta={"distilled_from": _named(teacher), "distill": {**chosen, "student": student}})
    student_fn = model_scorer(str(model_dir), gpus)
    blended = blend_export(cfg, task, str(model_dir), student_fn)  # finetune.blend=auto: the student's own blend
    ev_s = evaluate_export(str(model_dir), data, "test", probs_fn=student_fn)
    ev_t = evaluate_export(teacher_local, data, "test", probs_fn=model_scorer(teacher_local, gpus))
    test_texts = [task.texts[i] for i in task.splits["test"]]
    speed = {f"batch_{b}": {"teacher_rows_per_s": round(_speed(teacher_local, test_texts[:256], b), 1),
                            "student_rows_per_s": round(_speed(str(model_dir), test_texts[:256], b), 1)}
             for b in (1, 64)}
    for v in speed.values():
        v["speedup"] = round(v["student_rows_per_s"] / v["teacher_rows_per_s"], 2)
    return {"teacher": _named(teacher), "student": student, "model": run.uri("model"),
            "teacher_accuracy": ev_t["accuracy"], "student_accuracy": ev_s["accuracy"],
            "student_accuracy_ci": ev_s["accuracy_ci"], "teacher_accuracy_ci": ev_t["accuracy_ci"],
            "points_lost": round(100 * (ev_t["accuracy"] - ev_s["accuracy"]), 2),
            "vs_teacher": paired(ev_t, ev_s), "speedup": speed["batch_64"]["speedup"], "speed": speed,
            "teacher_params": count_params(load_finetuned(teacher_local)[0]),
            "student_params": count_params(load_finetuned(str(model_dir))[0]),
            "test_n": ev_s["n"], **blend_summary(blended, ev_s), **chosen}


def _named(p: str) -> str:
    return p if storage.is_uri(p) else str(Path(p).resolve())


def _prepare(cfg: Config, source, task, probs_at: str, n_rows: int, labels: list[str], temperature, alpha,
             world: int, materialize: bool = False):
    """-> (the loop's RunSpec, {"train", "val"} Ray Datasets). The student's training rows
    stream from teacher_probs.parquet through a Ray Data map that tokenizes them."""
    from ..cluster import init_ray
    from ..data.tasks import to_ray
    from ..finetune.backbones import run_spec
    from .. import tokenizer as toks
    from .distill_task import DistillSpec
    from .transfer import student_dataset

    init_ray()
    spec = run_spec(cfg, source, task, world=world)
    # the transfer set, not the labeled rows alone, sets the step arithmetic
    steps = Steps.from_epochs(n_rows, cfg.train.batch_size * cfg.train.grad_accum * world, cfg.finetune.epochs,
                              cfg.finetune.evals_per_epoch, where="the transfer set")
    info = DistillSpec(**{f.name: getattr(spec.task, f.name) for f in dataclasses.fields(spec.task)},
                       temperature=temperature, alpha=alpha)
    spec = dataclasses.replace(spec, task=info, steps=steps,
                               lineage={**spec.lineage, "distilled_from": cfg.finetune.data},
                               parallel=Parallel("fsdp" if cfg.scaling.strategy == "fsdp" and not materialize else "ddp",
                                                 cfg.train.activation_checkpointing == "true"))
    train = student_dataset(probs_at, source.tokenizer_json, cfg.finetune.max_len, labels)
    if materialize:
        # a Tune grid: every CPU may be held by a trial, leaving none for a Ray Data task, so
        # the rows are computed once, before the trials, into the object store (which spills
        # to disk past its size), and each trial only reads them
        train = train.materialize()
    tok = toks.from_json(source.tokenizer_json)
    return spec, {"train": train, "val": to_ray(task, tok, cfg.finetune.max_len, "val")}


def _slots(cfg: Config, res: dict, n_grid: int):
    """One (temperature, alpha): the run's Train workers. Several: the grid's trials, one
    in-process worker each. Either refuses, naming the key, what the cluster cannot schedule."""
    from ..train.launch import Workers, trial_resources

    if n_grid == 1:
        return Workers.of(cfg, res)
    sw = dataclasses.replace(cfg.sweep, in_process="always", workers_per_trial=1)
    return trial_resources(dataclasses.replace(cfg, sweep=sw), res)


def _train(cfg: Config, source, task, probs_at: str, n_rows: int, labels: list[str], temperature, alpha,
           run: storage.Run, workers):
    from ..cluster import cluster_summary, storage_path
    from ..train.launch import fit

    spec, datasets = _prepare(cfg, source, task, probs_at, n_rows, labels, temperature, alpha, workers.num)
    return fit(spec, datasets, workers, storage_path(run.uri("train"), cluster_summary()["nodes"]))


def _distill_trial(params: dict, *, spec, datasets: dict, use_gpu: bool) -> None:
    from ..train.context import TuneContext
    from ..train.loop import run

    info = dataclasses.replace(spec.task, temperature=params["temperature"], alpha=params["alpha"])
    run(dataclasses.replace(spec, task=info), TuneContext(datasets, use_gpu))


def _sweep(cfg: Config, source, task, probs_at: str, n_rows: int, labels: list[str], grid, run: storage.Run,
           slots):
    """A Ray Tune grid over (temperature, alpha): the same student, the same data, one
    in-process trial each; -> (best checkpoint, its (T, alpha), one row per trial)."""
    from ray import tune

    from ..train.launch import fit_trials

    spec, datasets = _prepare(cfg, source, task, probs_at, n_rows, labels, grid[0][0], grid[0][1], 1,
                              materialize=True)
    sw = cfg.sweep
    results = fit_trials(
        tune.with_parameters(_distill_trial, spec=spec, datasets=datasets, use_gpu=cfg.scaling.use_gpu),
        slots.bundle, run.uri("tune"), metric=sw.metric, mode=sw.mode, concurrent=slots.concurrent,
        max_failures=sw.max_failures, in_process=True,
        param_space={"temperature": tune.grid_search(sorted({t for t, _ in grid})),
                     "alpha": tune.grid_search(sorted({a for _, a in grid}))})
    trials = []
    for r in results:
        best = r.get_best_checkpoint(sw.metric, sw.mode) if r.error is None else None
        score = max((m[sw.metric] for _, m in r.best_checkpoints), default=None) if best else None
        trials.append({"temperature": r.config["temperature"], "alpha": r.config["alpha"],
                       f"best_{sw.metric}": score, "checkpoint": storage.to_uri(best.filesystem, best.path) if best else None,
                       "error": str(r.error).splitlines()[0][:200] if r.error else None})
    ok = [t for t in trials if t["checkpoint"]]
    if not ok:
        raise PtftError(f"distill: every trial failed: {trials[0]['error']}")
    top = (max if sw.mode == "max" else min)(ok, key=lambda t: t[f"best_{sw.metric}"])
    return top["checkpoint"], (top["temperature"], top["alpha"]), trials
