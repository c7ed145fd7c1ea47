"""The sweep's live console view: one line per change, readable in `ray job logs`.

    [sweep 1:12 / 5:00] 2 running, 3 done, 1 stopped early, 0 failed | best val_accuracy 0.6121 (full, lr 1.1e-04)

(Tune's own status tables are turned off: in a log they are screens of box drawing.)
"""
from __future__ import annotations

import sys
import time

from ray.tune import Callback

from .space import trial_lr


def _clock(s: float) -> str:
    return f"{int(s // 60)}:{int(s % 60):02d}"


class SweepProgress(Callback):
    def __init__(self, metric: str, mode: str, total: int, budget_s: float = 0.0, every_s: float = 10.0):
        self.metric, self.mode, self.total, self.budget = metric, mode, total, budget_s
        self.t0, self.every, self.last_line = time.time(), every_s, 0.0
        self.best: tuple[float, dict] | None = None
        self.done, self.stopped, self.failed = set(), set(), set()

    def _line(self, trials) -> None:
        running = sum(t.status == "RUNNING" for t in trials)
        budget = f" / {_clock(self.budget)}" if self.budget else ""
        best = ""
        if self.best:
            v, c = self.best
            best = f" | best {self.metric} {v:.4f} ({c.get('strategy')}, lr {trial_lr(c):.1e})"
        sys.stdout.write(f"[sweep {_clock(time.time() - self.t0)}{budget}] {running} running, "
                         f"{len(self.done)}/{self.total} done, {len(self.stopped)} stopped early, "
                         f"{len(self.failed)} failed{best}\n")
        sys.stdout.flush()
        self.last_line = time.time()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        v = result.get(self.metric)
        if v is not None and (self.best is None or (v > self.best[0] if self.mode == "max" else v < self.best[0])):
            self.best = (float(v), dict(trial.config))
            self._line(trials)
        elif time.time() - self.last_line >= self.every:
            self._line(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        r = trial.last_result or {}
        (self.done if r.get("step", 0) >= r.get("max_steps", float("inf")) else self.stopped).add(trial.trial_id)
        self._line(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.failed.add(trial.trial_id)
        self._line(trials)


def mlflow_callback(tracking_uri: str, experiment: str):
    """Ray's own MLflow integration, when run.mlflow_uri is set (pip install 'ptft_ray[mlflow]')."""
    if not tracking_uri:
        return []
    from ..errors import PtftError

    try:
        from ray.air.integrations.mlflow import MLflowLoggerCallback
    except ImportError:
        raise PtftError("run.mlflow_uri is set but mlflow is not installed: pip install 'ptft_ray[mlflow]'") from None
    return [MLflowLoggerCallback(tracking_uri=tracking_uri, experiment_name=experiment, save_artifact=False)]
