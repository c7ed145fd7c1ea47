"""What the loop takes: one typed RunSpec, built on the driver, pickled to every worker.

    RunSpec
      config      the resolved Config (for fine-tuning: the backbone's model section)
      task        a TaskSpec: what to train (LMSpec here, ClsSpec / DistillSpec in finetune/
                  and compress/); it builds the task object the loop calls
      tokenizer   the tokenizer as JSON (saved in every checkpoint)
      steps       Steps: max_steps, eval_every, steps_per_epoch
      keep        Keep: checkpoint on a schedule, or only the best by a metric
      init_from   the weights the model starts from (None: random / the config's own)
      lineage     where the run came from (written into every checkpoint)
      run_dir     the run directory as workers see it (resume, TensorBoard); None in a trial
      parallel    Parallel: DDP or FSDP, activation checkpointing or not
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config import Config
from ..errors import PtftError


class TaskSpec(Protocol):
    """Token ids, labels and the like: everything a task needs besides the config."""

    def build(self, spec: "RunSpec") -> Any:
        """-> the task object: model, loss, eval_stats, metrics, plan (train/tasks.py)."""

    def meta(self) -> dict:
        """-> the keys this task writes into a checkpoint's meta.json."""


@dataclass(frozen=True)
class Steps:
    max_steps: int
    eval_every: int = 0          # 0: evaluate at the last step only
    steps_per_epoch: int = 0     # 0: a stream without epochs (pretraining)

    @classmethod
    def from_epochs(cls, rows: int, per_step: int, epochs: float, evals_per_epoch: int,
                    where: str = "the data") -> "Steps":
        """Epoch-based arithmetic: steps/epoch = rows // (batch x accumulation x workers), as
        batches drop their ragged last one."""
        per_epoch = rows // per_step
        if per_epoch == 0:
            raise PtftError(f"{where}: {rows} training examples are fewer than one step's batch ({per_step}); "
                            f"lower train.batch_size")
        return cls(max_steps=max(1, math.ceil(epochs * per_epoch)),
                   eval_every=max(1, per_epoch // evals_per_epoch), steps_per_epoch=per_epoch)

    @property
    def evaluations(self) -> int:
        """Evaluations a complete run makes: every eval_every steps, and at the last step."""
        if not self.eval_every:
            return 1
        return self.max_steps // self.eval_every + (self.max_steps % self.eval_every != 0)


@dataclass(frozen=True)
class Keep:
    """best_only: checkpoint exactly at evaluations, and only those that improve `metric`
    (fine-tuning: every Tune report carries the metric). Otherwise every
    checkpoint.every_steps and at the end (pretraining)."""
    best_only: bool = False
    metric: str = "val_accuracy"
    mode: str = "max"

    def improves(self, value, best) -> bool:
        return value is not None and (best is None or (value > best if self.mode == "max" else value < best))


@dataclass(frozen=True)
class Parallel:
    """How the model is spread over the ranks (resolved on the driver by the memory plan)."""
    strategy: str = "ddp"         # ddp | fsdp
    checkpointing: bool = False   # per-block activation checkpointing


@dataclass(frozen=True)
class RunSpec:
    config: Config
    task: TaskSpec
    tokenizer: str
    steps: Steps
    keep: Keep = field(default_factory=Keep)
    init_from: str | None = None
    lineage: dict = field(default_factory=dict)
    run_dir: str | None = None
    parallel: Parallel = field(default_factory=Parallel)
