"""Significance-aware stopping: a sweep stops once no running or remaining trial is expected
to beat its best, with validation noise as the yardstick.

The rule (sweep.stop_on_noise; tests/test_stopping.py; replayed on the calibration's trials by
benchmarks/stopping.py, where a looser one lost points):
- noise = sqrt(2 b (1 - b) / n): one standard error of the difference between two accuracies
  read on the sweep's n validation examples, b the best so far.
- headroom(e) = the most any completed trial's best-so-far rose after its evaluation e.
- Once MIN_DONE trials have completed, a running trial at evaluation e is stopped when its best
  so far + headroom(e) < b - noise: even the largest rise seen would leave it short of the
  best by more than noise.
- No more trials start (the sweep ends) when the chance that any of the m trials not yet started
  beats the best beyond noise is under LAUNCH_P, estimated by Laplace's rule from how often a
  completed trial beat the best before it beyond noise (j of k: each (j + 1) / (k + 2)), and
  every running trial is stopped by the rule above.
"""
from __future__ import annotations

from ray.tune import Callback, Stopper

from .stats import noise

MIN_DONE, LAUNCH_P = 3, 0.1


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

    def __init__(self, metric: str, mode: str, n_val: int, max_t: int, total: int):
        self.metric, self.sign, self.n_val, self.max_t = metric, 1.0 if mode == "max" else -1.0, n_val, max_t
        self.total = total                          # trials the sweep would run
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
        if len(self.done) < MIN_DONE or not c or b is None:
            return False
        return max(c) + headroom([self.curves[t] for t in self.done], len(c)) < b - noise(abs(b), self.n_val)

    def chance_remaining_beat(self) -> float:
        """Laplace's estimate that one of the trials not yet started beats the best beyond noise."""
        k, j = len(self.gains) - 1, sum(self.gains[1:])
        m = max(self.total - len(self.curves), 0)
        return 1 - (1 - (j + 1) / (k + 2)) ** m

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self.metric not in result:
            return False
        self.curves.setdefault(trial_id, []).append(self.sign * float(result[self.metric]))
        if len(self.curves[trial_id]) >= self.max_t:
            self.complete(trial_id)
            return False
        if self.hopeless(trial_id):
            self.decisions.append({"trial": trial_id, "evaluation": len(self.curves[trial_id]),
                                   "best_so_far": self.sign * max(self.curves[trial_id]),
                                   "sweep_best": self.sign * self.best(), "noise": noise(abs(self.best()), self.n_val)})
            self.ended.add(trial_id)
            return True
        return False

    def complete(self, trial_id: str) -> None:
        if trial_id in self.done:
            return
        before = self.best(set(self.done))
        mine = max(self.curves[trial_id])
        self.gains.append(before is None or mine > before + noise(abs(before), self.n_val))
        self.done.append(trial_id)
        self.ended.add(trial_id)

    def stop_all(self) -> bool:
        running = [t for t in self.curves if t not in self.ended]
        self.stopped_all = (len(self.done) >= MIN_DONE and self.chance_remaining_beat() < LAUNCH_P
                            and all(self.hopeless(t) for t in running))
        return self.stopped_all

    # Callback: a trial that ended otherwise (ASHA, an error) is no longer running
    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended.add(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended.add(trial.trial_id)

    def summary(self, resumed: bool = False) -> dict:
        """resumed: Tune ran the stopper it restored from the experiment, not this one, so this
        one's counts say nothing and are left out."""
        rule = {"rule": f"noise: after {MIN_DONE} completed trials, a trial stops when its best + the largest "
                        "later rise of a completed trial < the sweep's best - sqrt(2 b (1 - b) / n); no more "
                        f"start when the chance a remaining trial beats the best beyond noise is < {LAUNCH_P}",
                "trials_planned": self.total, "n_val": self.n_val}
        if resumed:
            return {**rule, "resumed": "the counts of a resumed sweep's stopper are Tune's own, not reported"}
        return {**rule, "trials_started": len(self.curves), "trials_stopped": self.decisions,
                "sweep_ended_early": self.stopped_all}
