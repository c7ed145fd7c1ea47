"""Depth before breadth: where a budget runs more trials of one strategy than there are slots,
each trial trains longer instead (docs/decisions.md, "Depth before breadth")."""
from __future__ import annotations

import math

from . import sizing
from .cost import complete_trials

# one strategy: trials lengthened to at most 3x the shape's epochs, never past the epochs sizing
# caps a trial at, in half-epoch steps; a lengthened trial must fit 0.9 of the room, since Tune
# stops trials at the budget (docs/decisions.md, "Depth before breadth")
DEPTH_MAX, MAX_EPOCHS, DEPTH_STEP, DEPTH_SLACK = 3, 20, 0.5, 0.9


def deeper(shape: dict, epochs: float) -> dict:
    """The shape at `epochs`, with the evaluations per epoch sizing gives that length."""
    return {**shape, "sweep.epochs": [float(epochs)], "finetune.evals_per_epoch": sizing.evals_per_epoch_for(epochs)}


def deepen(shape: dict, n: int, conc: int, max_trials: int, room: float, per: float, seconds,
           reasons: list[str]):
    """One strategy at LRs within its calibrated winner's range: trials beyond one per slot buy
    little (their LRs are within 2x of each other), longer training buys much (docs/decisions.md,
    "Depth before breadth"); the loop keeps each trial's best evaluation, so a longer trial cannot
    end below its own earlier ones. So where the budget runs more trials than slots, each trial
    gets the most epochs (up to DEPTH_MAX x the shape's minimum, at most MAX_EPOCHS) at which one
    trial per slot still fits (more trials only where the longest trials leave room for them).
    per: seconds of one trial of `shape`; seconds(shape) costs another shape.
    -> (shape, trials, evaluations per trial, seconds per trial)."""
    target = max(2, conc) if not max_trials else min(max(2, conc), max_trials)
    base = shape["sweep.epochs"][0]
    best = None
    longest = min(MAX_EPOCHS, DEPTH_MAX * base)
    for k in range(1, int((longest - base) / DEPTH_STEP) + 1):
        sh = deeper(shape, base + k * DEPTH_STEP)
        t = seconds(sh)
        fits = complete_trials(room * DEPTH_SLACK, conc, t)
        if fits < target:
            break
        best = sh, min(fits, n), t  # n: already within max_trials and PER_STRATEGY
    if n <= target or best is None:
        return shape, n, math.ceil(base * shape["finetune.evals_per_epoch"]) + 1, per
    sh, m, t = best
    ep = sh["sweep.epochs"][0]
    reasons.append(f"depth: one strategy whose trials differ only by LR: the budget runs {m} trial(s) of "
                   f"{ep:g} epochs (~{t:.0f} s each) rather than {n} of {base:g} (~{per:.0f} s); "
                   f"longer training is what paid in the planned MiniLM sweeps (tweets 10,000: 2 -> 4 epochs, "
                   f"+6.6 points)")
    return sh, m, math.ceil(ep * sh["finetune.evals_per_epoch"]) + 1, t
