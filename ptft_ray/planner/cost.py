"""The planner's cost arithmetic: tokens and seconds of one trial, ASHA's share of the work,
and how many trials a budget holds. Pure functions of numbers; the rules (rules.py) decide.
"""
from __future__ import annotations

import math


def asha_fraction(n: int, grace: int, max_t: int, eta: int) -> float:
    """Expected share of full-length work ASHA spends: at rung r_k = grace * eta^k a trial
    continues only if it is in the top 1/eta of its rung, so n/eta^k trials reach r_k.
    work = sum_k (n / eta^k) * (r_k - r_{k-1}), ending at max_t; fraction = work / (n * max_t)."""
    if n <= 1 or grace >= max_t:
        return 1.0
    work, prev, k = 0.0, 0, 0
    while True:
        r = min(grace * eta ** k, max_t)
        work += max(n / eta ** k, 1.0) * (r - prev)
        if r >= max_t:
            break
        prev, k = r, k + 1
    return min(1.0, work / (n * max_t))


def trial_tokens(shape: dict, steps: int, n_val: int, epochs: float | None = None) -> tuple[int, int]:
    """(training tokens, evaluation tokens) of one trial of `shape` (its epochs unless given):
    every batch padded to max_len, steps x batch x max_len; an evaluation every
    1/evals_per_epoch epoch plus the final one, each over n_val examples. The cost model is
    fitted (benchmarks/derive_rules.py) and applied (trial_seconds) on these same figures."""
    ml, ep = shape["finetune.max_len"], shape["sweep.epochs"][0] if epochs is None else epochs
    evals = math.ceil(ep * shape["finetune.evals_per_epoch"]) + 1
    return steps * shape["sweep.batch_sizes"][0] * ml, evals * n_val * ml


def trial_seconds(strategy: str, shape: dict, n_train: int, n_val: int, rate: float,
                  cm: dict) -> float:
    """One trial, fitted on the calibration trials (cost_model in calibrated.json):
    t = a + b_strategy * train_tokens / rate + c * eval_tokens / rate, where rate is the
    checkpoint's measured tokens/s per worker (its own hardware)."""
    bs, ep = shape["sweep.batch_sizes"][0], shape["sweep.epochs"][0]
    train_tokens, eval_tokens = trial_tokens(shape, math.ceil(ep * (n_train // bs)), n_val)
    return cm["startup_s"] + train_coefficient(strategy, cm) * train_tokens / rate + cm["eval"] * eval_tokens / rate


# every strategy runs the whole forward pass, about a third of a full training step's work
FORWARD_SHARE = 1 / 3


def train_coefficient(strategy: str, cm: dict) -> float:
    """The fitted seconds per training token / rate of a strategy, never under the forward pass's
    share of full fine-tuning's: every strategy runs the whole forward pass, and fits from a few
    short trials priced some under it (docs/decisions.md, "Fit anything")."""
    full = cm["train"].get("full", max(cm["train"].values()))
    return max(cm["train"].get(strategy, max(cm["train"].values())), FORWARD_SHARE * full)


def whole_rounds(n: int, conc: int, trial_s: float, room: float) -> tuple[int, int]:
    """n whole trials in rounds of `conc` within `room` seconds -> (trials that complete, trials
    the room stops short: the last round's, started but not finished)."""
    rounds = max(1, int(room // trial_s))  # trial_s > 0: every cost model has a start-up term
    done = min(n, rounds * conc)
    return done, min(n - done, conc)


def complete_trials(budget: float, conc: int, trial_s: float) -> int:
    """The most trials run to completion (no early stopping) whose work fits the budget."""
    return fit_trials(budget, conc, trial_s, 1, 1, 2)  # grace >= max_t: nothing stops early


def fit_trials(budget: float, conc: int, trial_s: float, grace: int, max_t: int, eta: int) -> int:
    """The most trials whose ASHA-discounted work fits the budget across `conc` slots."""
    n = 1
    while n < 200:
        nxt = n + 1
        frac = asha_fraction(nxt, grace, max_t, eta) if nxt > eta else 1.0
        waves = nxt * trial_s * frac / conc if nxt >= conc else trial_s
        if waves > budget:
            break
        n = nxt
    return n
