"""Significance-aware stopping (finetune/stopping.py): the stated rule on known curves, then in
a real Ray Tune experiment, where it must save trial time without losing the winner."""
from __future__ import annotations

import math
import time

from ptft_ray.finetune.stats import noise
from ptft_ray.finetune.stopping import NoiseStopper, headroom


def feed(st: NoiseStopper, trial: str, values: list[float]) -> list[bool]:
    return [st(trial, {"val_accuracy": v}) for v in values]


def test_the_rule_on_known_curves():
    assert math.isclose(noise(0.72, 200), math.sqrt(2 * 0.72 * 0.28 / 200))
    assert headroom([], 1) is None and headroom([[0.6, 0.7, 0.72, 0.71]], 2) == 0.72 - 0.7
    st = NoiseStopper("val_accuracy", "max", n_val=200, max_t=4, total=10)
    # nothing is stopped before MIN_DONE (3) trials complete: the headroom is not known yet
    assert feed(st, "z", [0.3]) == [False]
    feed(st, "a", [0.6, 0.7, 0.72, 0.71])
    feed(st, "b", [0.5, 0.6, 0.62, 0.62])
    assert feed(st, "z", [0.3]) == [False] and st.done == ["a", "b"]
    feed(st, "c", [0.55, 0.6, 0.65, 0.66])
    assert st.done == ["a", "b", "c"] and st.gains == [True, False, False]
    # z at evaluation 3: 0.3 + the largest later rise (c's 0.01 after its evaluation 3) < 0.72 - 0.045
    assert feed(st, "z", [0.3]) == [True] and st.decisions[-1]["trial"] == "z"
    # d at its first evaluation may still rise 0.12 (as a did): 0.58 + 0.12 > 0.72 - 0.045
    assert feed(st, "d", [0.58]) == [False]
    # ... but 0.5 + 0.12 falls short by more than the noise of 200 examples
    assert feed(st, "e", [0.5]) == [True]
    # ... and within the noise of 20 examples it would not
    small = NoiseStopper("val_accuracy", "max", n_val=20, max_t=4, total=10)
    for t, c in (("a", [0.6, 0.7, 0.72, 0.71]), ("b", [0.5, 0.6, 0.62, 0.62]), ("c", [0.55, 0.6, 0.65, 0.66])):
        feed(small, t, c)
    assert feed(small, "e", [0.5]) == [False]
    # new trials keep starting while the 4 not started may still beat the best: each 1/4 (Laplace:
    # 0 of 2 comparisons beat it), any of them 1 - (3/4)^4
    assert math.isclose(st.chance_remaining_beat(), 1 - (3 / 4) ** 4) and not st.stop_all()
    for t in "fghi":                                # four more that gain nothing beyond noise
        feed(st, t, [0.6, 0.65, 0.7, 0.71])
    assert st.gains[-4:] == [False] * 4 and st.chance_remaining_beat() == 0  # none left to start
    assert not st.stop_all()                      # d still runs and can still get there ...
    feed(st, "d", [0.58, 0.58, 0.58])             # ... until it completes short of the best
    assert st.stop_all() and st.summary()["sweep_ended_early"]
    # a resumed sweep ran the stopper Tune restored: this one's counts are not reported as its
    assert not {"trials_started", "trials_stopped", "sweep_ended_early"} & set(st.summary(resumed=True))
    # mode min: the same rule on losses
    lo = NoiseStopper("val_accuracy", "min", n_val=200, max_t=2, total=5)
    for t in "abc":
        feed(lo, t, [0.4, 0.3])
    assert feed(lo, "d", [0.9]) == [True]


def curve(lr: float, evals: int = 8) -> list[float]:
    """A learning curve whose ceiling depends on the LR (best near 1e-3), as trials' do."""
    top = 0.85 - 0.08 * abs(math.log10(lr) + 3)
    return [round(top - (top - 0.5) * math.exp(-(i + 1) / 2), 4) for i in range(evals)]


def trial(config):
    from ray import tune

    for v in curve(config["lr"]):
        time.sleep(0.15)
        tune.report({"val_accuracy": v})


def test_a_tune_sweep_ends_early_and_keeps_its_winner(ray_session, tmp_path):
    """Eight trials, two at a time, over LRs whose ceilings differ by more than noise: with the
    stopper the sweep runs fewer evaluations by >= 30 % and ends with the same winner, within
    noise of its full-length accuracy."""
    import sys

    from ray import cloudpickle, tune

    from ptft_ray.train.launch import fit_trials

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # trial actors cannot import a test module
    lrs = [1e-3, 3e-3, 1e-2, 3e-4, 3e-2, 1e-4, 1e-1, 1e-5]
    space = {"lr": tune.grid_search(lrs)}

    def run(name, stopper):
        grid = fit_trials(trial, {"CPU": 0.5}, str(tmp_path / name), metric="val_accuracy", mode="max",
                          concurrent=2, param_space=space, stop=stopper, callbacks=(stopper,) if stopper else ())
        evals = sum(len(r.metrics_dataframe) for r in grid if r.metrics_dataframe is not None)
        best = grid.get_best_result(metric="val_accuracy", mode="max", scope="all")
        return evals, best.config["lr"], best.metrics_dataframe["val_accuracy"].max()

    full_evals, full_lr, full_best = run("full", None)
    st = NoiseStopper("val_accuracy", "max", n_val=1000, max_t=8, total=len(lrs))
    evals, lr, best = run("stopped", st)
    assert full_evals == 8 * 8
    assert evals <= 0.7 * full_evals, (evals, st.summary())
    # the same winner, ended where its own remaining rise was within noise
    assert lr == full_lr == 1e-3 and full_best - noise(full_best, 1000) <= best <= full_best
    assert st.decisions and all(d["best_so_far"] < d["sweep_best"] for d in st.decisions)


def test_the_stopper_counts_the_evaluations_the_loop_makes():
    """A trial completes after Steps.evaluations reports: the same count as the loop's own
    schedule (train/loop.due), with and without a final evaluation off the eval_every grid."""
    from ptft_ray.config import Config
    from ptft_ray.train.loop import due
    from ptft_ray.train.spec import RunSpec, Steps

    for steps in (Steps(10, 3), Steps(9, 3), Steps(7, 0), Steps(1, 1), Steps(12, 5, 12)):
        spec = RunSpec(config=Config(), task=None, tokenizer="", steps=steps)
        assert sum(due(spec, s)[1] for s in range(1, steps.max_steps + 1)) == steps.evaluations, steps
