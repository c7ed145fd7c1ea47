"""Significance-aware stopping: a sweep stops once no running or remaining trial can beat its
best by more than validation noise.

The rule (sweep.stop_on_noise; tests/test_stopping.py):
- noise = sqrt(2 b (1 - b) / n): one standard error of the difference between two accuracies
  read on the sweep's n validation examples, b the best so far.
- headroom(e) = the most any completed trial's best-so-far rose after its evaluation e. Until a
  trial completes, nothing is stopped (no headroom is known).
- A running trial at evaluation e is stopped when its best so far + headroom(e) <= b + noise:
  even its largest rise seen would not beat the best beyond noise.
- No more trials start (the sweep ends) once MIN_DONE trials have completed, none of the last
  PATIENCE to complete beat the best before it by more than noise, and every running trial is
  stopped by the rule above.
"""
from __future__ import annotations

import math

from ray.tune import Callback, Stopper

MIN_DONE, PATIENCE = 2, 2


def noise(best: float, n_val: int) -> float:
    return math.sqrt(max(2 * best * (1 - best), 0.0) / max(n_val, 1))


def headroom(curves: list[list[float]], evaluation: int) -> float | None:
    """The most a completed trial's best-so-far rose after `evaluation` (1-based); None if none completed."""
    rises = []
    for c in curves:
        run = [max(c[:i + 1]) for i in range(len(c))]
        at = run[min(evaluation, len(run)) - 1]
        rises.append(run[-1] - at)
    return max(rises) if rises else None


class NoiseStopper(Stopper, Callback):
    """Tune's stopper (per trial, and for the whole sweep) and a callback (which trials ended):
    pass the same object as `stop` and in `callbacks`. `decisions` records what it stopped, why."""

    def __init__(self, metric: str, mode: str, n_val: int, max_t: int):
        self.metric, self.sign, self.n_val, self.max_t = metric, 1.0 if mode == "max" else -1.0, n_val, max_t
        self.curves: dict[str, list[float]] = {}   # trial -> its metric per evaluation (sign-adjusted)
        self.done: list[str] = []                   # completed trials, in the order they completed
        self.gains: list[bool] = []                 # did each completed trial beat the best before it beyond noise
        self.ended: set[str] = set()
        self.decisions: list[dict] = []
        self.stopped_all = False

    def best(self, among=None) -> float | None:
        vals = [max(c) for t, c in self.curves.items() if c and (among is None or t in among)]
        return max(vals) if vals else None

    def hopeless(self, trial_id: str) -> bool:
        c, b = self.curves.get(trial_id), self.best()
        room = headroom([self.curves[t] for t in self.done], len(c)) if c else None
        if room is None or b is None:
            return False
        return max(c) + room <= b + noise(abs(b), self.n_val)

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self.metric not in result:
            return False
        self.curves.setdefault(trial_id, []).append(self.sign * float(result[self.metric]))
        if len(self.curves[trial_id]) >= self.max_t:
            self._complete(trial_id)
            return False
        if self.hopeless(trial_id):
            self.decisions.append({"trial": trial_id, "evaluation": len(self.curves[trial_id]),
                                   "best_so_far": self.sign * max(self.curves[trial_id]),
                                   "sweep_best": self.sign * self.best(), "noise": noise(abs(self.best()), self.n_val)})
            self.ended.add(trial_id)
            return True
        return False

    def _complete(self, trial_id: str) -> None:
        if trial_id in self.done:
            return
        before = self.best(set(self.done))
        mine = max(self.curves[trial_id])
        self.gains.append(before is None or mine > before + noise(abs(before), self.n_val))
        self.done.append(trial_id)
        self.ended.add(trial_id)

    def stop_all(self) -> bool:
        running = [t for t in self.curves if t not in self.ended]
        self.stopped_all = (len(self.done) >= MIN_DONE and not any(self.gains[-PATIENCE:])
                            and len(self.gains) >= PATIENCE and all(self.hopeless(t) for t in running))
        return self.stopped_all

    # Callback: a trial that ended otherwise (ASHA, an error) is no longer running
    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended.add(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended.add(trial.trial_id)

    def summary(self) -> dict:
        return {"rule": "noise: a trial stops when its best + the largest later rise of a completed trial "
                        "<= the sweep's best + sqrt(2 b (1 - b) / n); the sweep ends when the last "
                        f"{PATIENCE} completed trials gained nothing beyond noise and no running trial can",
                "n_val": self.n_val, "trials_stopped": self.decisions, "sweep_ended_early": self.stopped_all}
