"""One row per Tune trial: its parameters, best checkpoint and metric, and why it ended."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from .. import storage
from ..errors import error_line
from .space import trial_lr

COLUMNS = ["trial_id", "checkpoint", "strategy", "lr", "weight_decay", "batch_size", "epochs",
           "unfreeze_top_k", "lora_rank", "lr_decay", "best_metric", "best_step", "steps_trained",
           "max_steps", "evals", "wall_s", "stop_reason", "error", "best_checkpoint"]


OOM_MARKS = ("can't allocate memory", "OutOfMemoryError", "out of memory", "CUDA out of memory")


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


def best_checkpoint(r, metric: str, mode: str, fs=None) -> tuple[str | None, float | None, int | None]:
    """The trial's best (not last) checkpoint by the metric, wherever it was kept, as a local
    path or a URI. fs: the sweep's storage filesystem (TorchTrainer trials report paths in it)."""
    cands = []
    for ck, m in (r.best_checkpoints or []):             # in-process trials: Tune kept it
        cands.append((storage.to_uri(ck.filesystem, ck.path), m.get(metric), m.get("step")))
    df = r.metrics_dataframe
    if not cands and df is not None and "checkpoint_path" in df:  # TorchTrainer trials
        for _, row in df.dropna(subset=["checkpoint_path"]).iterrows():
            where = storage.to_uri(fs, row["checkpoint_path"]) if fs is not None else row["checkpoint_path"]
            if storage.exists(where):
                cands.append((where, row.get(metric), row.get("step")))
    best = None
    for path, value, step in cands:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if best is None or _better(value, best[1], mode):
            best = (path, float(value), int(step) if step is not None else None)
    return best or (None, None, None)


def trial_row(r, metric: str, mode: str, fs=None) -> dict:
    cfg, m = r.config or {}, r.metrics or {}
    path, value, step = best_checkpoint(r, metric, mode, fs)
    if r.error is not None:
        err = error_line(r.error)
        reason = ("diverged" if "diverged" in err else
                  "oom" if any(m in err for m in OOM_MARKS) else "error")
    else:
        err = ""
        done = m.get("step") is not None and m.get("step") >= m.get("max_steps", float("inf"))
        reason = "completed" if done else "stopped"
    row = {k: cfg.get(k) for k in COLUMNS if k in cfg}
    if cfg.get("strategy"):
        row["lr"] = trial_lr(cfg)
    trial_id = m.get("trial_id") or (Path(r.path).name if r.path else "?")
    row.update(trial_id=trial_id,
               best_metric=value, best_step=step, steps_trained=m.get("step"),
               max_steps=m.get("max_steps"), evals=m.get("training_iteration"),
               wall_s=m.get("time_total_s"), stop_reason=reason, error=err, best_checkpoint=path)
    return row


def write_trials_csv(rows: list[dict], path: Path) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    tmp.replace(path)
