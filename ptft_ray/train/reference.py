"""DDP checked against a single-process reference (picotron style).

`ddp_grad_loop` runs on Ray Train workers: each rank takes its contiguous slice of one
global batch, runs forward/backward through the DDP-wrapped model, and rank 0 returns the
all-reduced gradients. `reference_grads` computes the same on the whole batch in one
process. With equal tokens per rank, mean-of-rank-means == global mean, so they must match.
A masked-LM batch carries its masks (`mlm_labels`): drawn once for the whole batch, so
every rank's slice is masked as the single process's batch is, and each row holds the
same number of masked tokens (`lc["mlm_per_row"]`) to keep the means equal.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import Config
from .spec import RunSpec, Steps
from .tasks import LMSpec, LMTask


def _task(lc: dict) -> LMTask:
    torch.manual_seed(lc["seed"])
    task = LMSpec(lc.get("objective", "clm"), lc["vocab_size"], lc["pad_id"], lc.get("eot_id"),
                  lc.get("mask_id"), tuple(lc.get("special_ids", ())))
    return task.build(RunSpec(config=Config.from_dict(lc["config"]), task=task, tokenizer="", steps=Steps(1)))


def _batch(lc: dict, rows: slice) -> dict:
    b = {"tokens": torch.tensor(lc["batch"])[rows]}
    if "mlm_labels" in lc:
        b["mlm_labels"] = torch.tensor(lc["mlm_labels"])[rows]
    return b


def _grads(model) -> dict[str, np.ndarray]:
    return {n.removeprefix("module."): p.grad.detach().cpu().numpy().copy()
            for n, p in model.named_parameters() if p.grad is not None}


def ddp_grad_loop(lc: dict) -> dict:
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    task = _task(lc)
    model = ray.train.torch.prepare_model(task.model)
    per = len(lc["batch"]) // world
    total, n = task.loss(model, _batch(lc, slice(rank * per, (rank + 1) * per)))
    (total / n).backward()  # DDP all-reduces (averages) the gradients here
    return _grads(model) if rank == 0 else {}


def reference_grads(lc: dict) -> dict[str, np.ndarray]:
    task = _task(lc)
    total, n = task.loss(task.model, _batch(lc, slice(None)))
    (total / n).backward()
    return _grads(task.model)


def cases_loop(config: dict) -> dict:
    """Several checks on one worker group, in order: config["cases"] is a list of (loop, lc),
    each loop one of this module's or reference_parallel's. One group start serves them all
    (a start costs ~30 s on 2 CPUs, a case a few). -> {"results": [each loop's rank-0 value]}."""
    import ray.train

    results = [loop(lc) for loop, lc in config["cases"]]
    return {"results": results} if ray.train.get_context().get_world_rank() == 0 else {}
