"""Significance-aware stopping (finetune/stopping.py): the stated rule on known curves, then in
a real Ray Tune experiment, where it must save trial time without losing the winner."""
from __future__ import annotations

import math
import time

from ptft_ray.finetune.stopping import NoiseStopper, headroom, noise


def feed(st: NoiseStopper, trial: str, values: list[float]) -> list[bool]:
    return [st(trial, {"val_accuracy": v}) for v in values]


def test_the_rule_on_known_curves():
    assert math.isclose(noise(0.72, 200), math.sqrt(2 * 0.72 * 0.28 / 200))
    assert headroom([], 1) is None and headroom([[0.6, 0.7, 0.72, 0.71]], 2) == 0.72 - 0.7
    st = NoiseStopper("val_accuracy", "max", n_val=200, max_t=4)
    # nothing is stopped before a trial completes: no headroom is known
    assert feed(st, "b", [0.3, 0.31]) == [False, False]
    assert feed(st, "a", [0.6, 0.7, 0.72, 0.71]) == [False] * 4 and st.done == ["a"]
    # b: 0.31 + a's largest rise after evaluation 3 (0.0) is far below 0.72 + noise: stopped
    assert feed(st, "b", [0.32]) == [True] and st.decisions[-1]["trial"] == "b"
    # c at its first evaluation may still rise 0.12 (as a did): 0.70 + 0.12 > 0.72 + 0.045
    assert feed(st, "c", [0.70]) == [False]
    # ... but not with a validation set so small its noise covers the rise
    small = NoiseStopper("val_accuracy", "max", n_val=20, max_t=4)
    feed(small, "a", [0.6, 0.7, 0.72, 0.71])
    assert feed(small, "c", [0.70]) == [True]
    # the sweep ends only after PATIENCE completed trials that gained nothing beyond noise
    assert not st.stop_all()
    feed(st, "c", [0.71, 0.72, 0.72])                 # completes level with a: no gain
    assert st.gains == [True, False] and not st.stop_all()
    feed(st, "d", [0.5, 0.55, 0.6, 0.6])              # completes below: no gain
    assert st.stop_all() and st.summary()["sweep_ended_early"]
    # mode min: the same rule on losses
    lo = NoiseStopper("val_accuracy", "min", n_val=200, max_t=2)
    feed(lo, "a", [0.4, 0.3])
    assert feed(lo, "b", [0.9]) == [True]


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
    st = NoiseStopper("val_accuracy", "max", n_val=1000, max_t=8)
    evals, lr, best = run("stopped", st)
    assert full_evals == 8 * 8
    assert evals <= 0.7 * full_evals, (evals, st.summary())
    # the same winner, ended where its own remaining rise was within noise
    assert lr == full_lr == 1e-3 and full_best - noise(full_best, 1000) <= best <= full_best
    assert st.decisions and all(d["best_so_far"] < d["sweep_best"] for d in st.decisions)
