"""`ptft-ray finetune`: one fine-tuning run on Ray Train, its best checkpoint exported."""
from __future__ import annotations

import json
import time

from .. import storage
from ..cluster import check_reachable, cluster_summary, init_ray, storage_path
from ..config import Config
from ..data.tasks import load_task
from ..errors import PtftError
from ..train.launch import Workers, fit
from .evaluate import blend_export, blend_summary, evaluate_export, headline, model_scorer
from .export import export
from ..train.memory import device_memory, resolve
from .backbones import datasets_for, resolve_sources, run_spec, source_shape


def finetune(cfg: Config, pretrained: str | None, out: str | None = None, overwrite: bool = False,
             arch_from: str | None = None) -> dict:
    t0 = time.time()
    run = storage.Run(out or "runs/finetune")
    out_p = run.local  # the driver's files; Ray Train writes its checkpoints to run.where
    task = load_task(cfg.finetune)
    (source,) = resolve_sources([pretrained] if pretrained else [], cfg, arch_from)
    init_ray(forward=cfg.cluster.forward_env)
    res = cluster_summary()
    # workers load the checkpoint and write the run: refused here, before anything is replaced
    check_reachable({"--out": run.where, "--pretrained": [source.path or ""]}, res["nodes"])
    workers = Workers.of(cfg, res)
    parallel, cfg, _ = resolve(cfg, source_shape(source, len(task.label_names)), workers.num, cfg.finetune.max_len,
                               device_memory(cfg.scaling, res))
    if run.nonempty():  # only once the run can be scheduled and fits a device
        if not overwrite:
            raise PtftError(f"{run.where} exists; use another --out or --overwrite")
        run.clear()
    run.start()
    sc, metric = cfg.scaling, cfg.sweep.metric
    spec = run_spec(cfg, source, task, world=workers.num, parallel=parallel)
    result = fit(spec, datasets_for(task, source, cfg.finetune.max_len), workers,
                 storage_path(run.uri("train"), res["nodes"]))
    best_ckpt, best_metrics = result.best_checkpoints[0]
    model_dir = out_p / "model"
    export(storage.to_uri(best_ckpt.filesystem, best_ckpt.path), model_dir)
    gpus = sc.gpus_in_use  # tested on a GPU where it trained on one
    probs_fn = model_scorer(str(model_dir), gpus)
    blended = blend_export(cfg, task, str(model_dir), probs_fn)
    test = evaluate_export(str(model_dir), cfg.finetune.data, "test", with_baselines=True, probs_fn=probs_fn)
    summary = {"metric": metric, "best_metric": best_metrics.get(metric), "best_step": best_metrics.get("step"),
               "export_path": run.uri("model"), "test_accuracy": test["accuracy"],
               "test_macro_f1": test["macro_f1"], "test_n": test["n"], **headline(test),
               **blend_summary(blended, test),
               "strategy": cfg.finetune.strategy, "lineage": source.lineage,
               "class_balance": task.balance("train"), "wall_s": time.time() - t0,
               # training throughput: examples seen / seconds in training steps (no evaluation)
               "train_examples_per_s": (result.metrics.get("examples", 0) / result.metrics["train_s"]
                                        if result.metrics.get("train_s") else None)}
    (out_p / "evaluation.json").write_text(json.dumps(test, indent=2))  # confusion matrix, rows, baselines
    (out_p / "result.json").write_text(json.dumps(summary, indent=2))
    run.publish()
    return summary
