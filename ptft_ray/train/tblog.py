"""TensorBoard event files for a pretraining run: rank 0 writes RUN_DIR/tensorboard/ as it
trains (`tensorboard --logdir runs/`). Sweeps get theirs from Ray Tune's own TBX logger."""
from __future__ import annotations

import os


def tensorboard_writer(run_dir: str | None, rank: int):
    if rank != 0 or not run_dir or "://" in run_dir:
        return None  # remote storage: metrics.jsonl and the report carry the history
    from tensorboardX import SummaryWriter

    return SummaryWriter(os.path.join(run_dir, "tensorboard"), flush_secs=10)


def log_scalars(writer, metrics: dict, step: int) -> None:
    for k, v in metrics.items():
        if k not in ("step", "max_steps") and isinstance(v, (int, float)):
            writer.add_scalar(k, v, step)
