"""DDP checked against a single-process reference (picotron style).

`ddp_grad_loop` runs on Ray Train workers: each rank takes its contiguous slice of one
global batch, runs forward/backward through the DDP-wrapped model, and rank 0 returns the
all-reduced gradients. `reference_grads` computes the same on the whole batch in one
process. With equal tokens per rank, mean-of-rank-means == global mean, so they must match.
A masked-LM batch carries its masks (`mlm_labels`): drawn once for the whole batch, so
every rank's slice is masked as the single process's batch is, and each row holds the
same number of masked tokens to keep the means equal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import Config
from .spec import Keep, RunSpec, Steps, TaskSpec
from .tasks import LMSpec


@dataclass(frozen=True)
class Check:
    """One check's inputs, the same in every process: the run's config and task, the seed of
    its initial weights, and the batches, key -> [step][row][...] (an LM's tokens and
    mlm_labels; a classifier's input_ids, length and label)."""
    config: Config
    task: TaskSpec
    batches: dict
    steps: int = 1
    seed: int = 3
    strategy: str = "ddp"             # reference_parallel: ddp | fsdp
    checkpointing: bool = False       # per-block activation checkpointing
    init_from: str | None = None      # the weights the model starts from
    checkpoint: str | None = None     # a sharded checkpoint restore_and_step_loop reads

    @classmethod
    def lm(cls, config: Config, vocab_size: int, pad_id: int, batches: dict, mask_id: int | None = None,
           special_ids: tuple = (), **kw) -> "Check":
        """A causal LM, or a masked LM where mask_id is given (batches carry mlm_labels)."""
        task = LMSpec("clm" if mask_id is None else "mlm", vocab_size, pad_id, None, mask_id, tuple(special_ids))
        return cls(config, task, batches, **kw)

    def build(self):
        """-> (spec, task, parameter groups): the same initial weights in every process."""
        spec = RunSpec(config=self.config, task=self.task, tokenizer="", steps=Steps(self.steps, 0, self.steps),
                       keep=Keep(best_only=not isinstance(self.task, LMSpec)), init_from=self.init_from)
        torch.manual_seed(self.seed)
        task = spec.task.build(spec)
        return spec, task, task.groups(spec)

    def batch(self, step: int, rows: slice) -> dict:
        return {key: torch.tensor(steps[step % len(steps)])[rows] for key, steps in self.batches.items()}

    @property
    def rows(self) -> int:
        return len(next(iter(self.batches.values()))[0])


def _grads(model) -> dict[str, np.ndarray]:
    return {n.removeprefix("module."): p.grad.detach().cpu().numpy().copy()
            for n, p in model.named_parameters() if p.grad is not None}


def ddp_grad_loop(check: Check) -> dict:
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    _, task, _ = check.build()
    model = ray.train.torch.prepare_model(task.model)
    per = check.rows // world
    total, n = task.loss(model, check.batch(0, slice(rank * per, (rank + 1) * per)))
    (total / n).backward()  # DDP all-reduces (averages) the gradients here
    return _grads(model) if rank == 0 else {}


def reference_grads(check: Check) -> dict[str, np.ndarray]:
    _, task, _ = check.build()
    total, n = task.loss(task.model, check.batch(0, slice(None)))
    (total / n).backward()
    return _grads(task.model)


def cases_loop(config: dict) -> dict:
    """Several checks on one worker group, in order: config["cases"] is a list of (loop, Check),
    each loop one of this module's or reference_parallel's. One group start serves them all
    (a start costs ~30 s on 2 CPUs, a case a few). -> {"results": [each loop's rank-0 value]}."""
    import ray.train

    results = [loop(check) for loop, check in config["cases"]]
    return {"results": results} if ray.train.get_context().get_world_rank() == 0 else {}
