"""The planner's decisions: pure functions of (data scan, checkpoints, budget, cluster).

Every choice returns its reason. The strategy ranking, LR ranges and cost coefficients
come from `calibrated.json`, which benchmarks/derive_rules.py writes from the measured
calibration table (benchmarks/results/calibration.json); nothing here is a guess that a
measurement could replace.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import PtftError
from ..finetune.select import rescore_size
from . import sizing
from .decoder import decoder_rule

CALIBRATED = json.loads((Path(__file__).with_name("calibrated.json")).read_text())
# what each family's calibration was measured on (a plan names the one it used)
FAMILY_NAMES = {"gpt": "our GPT (gpt_small pretrained on news)", "hf_encoder": "a pretrained Hugging Face encoder (MiniLM-L6)"}


def calibration(family: str) -> dict:
    """The calibrated rules of a model family: the top level of calibrated.json is our own GPT;
    other families (benchmarks/derive_rules.py --family F) sit under 'families'."""
    return CALIBRATED if family == "gpt" else CALIBRATED["families"][family]


def family_of(sources: list[dict]) -> tuple[str, str]:
    """-> (calibrated family to use, why). Hugging Face decoders have no calibration of their
    own: the encoder's is nearest for cost and ranking (their LRs: planner/decoder.py)."""
    kinds = {s.get("family", "gpt") for s in sources}
    fams = CALIBRATED.get("families", {})
    if kinds == {"gpt"} or not fams:
        return "gpt", f"calibration: {FAMILY_NAMES['gpt']} (the checkpoints are ours)" if kinds == {"gpt"} else \
            "calibration: only our GPT is calibrated; the checkpoints are not of that family"
    if kinds <= set(fams):
        (k,) = kinds if len(kinds) == 1 else ("hf_encoder",)
        return k, f"calibration: {FAMILY_NAMES.get(k, k)}, the family of the given checkpoints"
    return "hf_encoder", (f"calibration: {FAMILY_NAMES['hf_encoder']}: the nearest calibrated family to "
                          f"{', '.join(sorted(kinds))} (no calibration of their own)")
# reserved from the budget for the sweep's own start (Ray, data encoding), the export and the
# test evaluation; tests/test_planner.py measures a 60 s budget ending within 60 + 20 s
STARTUP_S = 15.0
# the share of the budget kept for re-scoring the top trials on a larger validation set
# (finetune/select.py), and how many trials are re-scored
RESCORE_SHARE, RESCORE_TOP_K = 0.15, 3
# LR draws per strategy before the budget is spent on more strategies (8 draws spread evenly
# over a 30x calibrated range are 30^(1/7) = 1.6x apart)
PER_STRATEGY = 8
# one strategy: trials lengthened to at most 3x the shape's epochs (the 'long' level's 3x the
# minimum steps), never past the epochs sizing caps a trial at, in steps of half an epoch (at
# 10,000 labels a whole epoch is ~400 s of a trial on one CPU: 3 epochs may not fit where 2.5 do)
DEPTH_MAX, MAX_EPOCHS, DEPTH_STEP = 3, 20, 0.5
# a lengthened trial must fit 0.9 of the room: Tune stops trials at the budget, and the MiniLM
# cost model's errors on the planned sweeps' trials were within 11 % (derive_rules.fit_cost)
DEPTH_SLACK = 0.9


def bucket(n_train: int, cal: dict = CALIBRATED) -> str:
    """The calibrated data size nearest in log scale (100, 1000, 10000)."""
    sizes = sorted(int(s) for s in cal["buckets"])
    return str(min(sizes, key=lambda s: abs(math.log(s) - math.log(max(n_train, 1)))))


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
                  cm: dict = CALIBRATED["cost_model"]) -> float:
    """One trial, fitted on the calibration trials (cost_model in calibrated.json):
    t = a + b_strategy * train_tokens / rate + c * eval_tokens / rate, where rate is the
    checkpoint's measured tokens/s per worker (its own hardware)."""
    bs, ep = shape["sweep.batch_sizes"][0], shape["sweep.epochs"][0]
    train_tokens, eval_tokens = trial_tokens(shape, math.ceil(ep * (n_train // bs)), n_val)
    return (cm["startup_s"] + cm["train"].get(strategy, max(cm["train"].values())) * train_tokens / rate
            + cm["eval"] * eval_tokens / rate)


def choose_resources(res: dict) -> tuple[dict, int, int, list[str]]:
    """-> (resources per trial, concurrency, workers per trial, reasons)."""
    reasons = []
    if res.get("gpus", 0) >= 1:
        conc = int(res["gpus"])
        cpus = max(1.0, min(4.0, (res["cpus"] - 1) // conc))
        reasons.append(f"resources: the cluster has {res['gpus']:g} GPU(s): one trial per GPU "
                       f"({conc} at a time), {cpus:g} CPU each for its data")
        return {"CPU": cpus, "GPU": 1.0}, conc, 1, reasons
    conc = max(1, int(res["cpus"]))
    reasons.append(f"resources: CPU only ({res['cpus']:g} CPUs): {conc} one-CPU trials at a time, each "
                   f"in-process (one worker); measured 6.5 s vs 20.3 s per trial for a TorchTrainer "
                   f"per trial (benchmarks/results/trial_overhead.json)")
    return {"CPU": 1.0}, conc, 1, reasons


def choose(scan: dict, sources: list[dict], budget_s: float, res: dict, max_trials: int = 0,
           strategies_allowed: list[str] | None = None) -> dict:
    n_train, n_val = scan["examples"]["train"], scan["examples"]["val"]
    model_max = min(s["max_seq_len"] for s in sources)
    reasons: list[str] = []
    family, why_family = family_of(sources)
    fam = calibration(family)
    b = bucket(n_train, fam)
    reasons.append(why_family + f"; data size bucket {b} (calibrated: {', '.join(sorted(fam['buckets'], key=int))})")
    # the calibration of the same task type (binary / multi-class) at this size, else pooled
    ttype = scan.get("task_type")
    cal = fam["buckets"][b].get("by_task_type", {}).get(ttype) or fam["buckets"][b]
    which = f"{ttype} tasks" if cal is not fam["buckets"][b] else "all calibrated tasks"
    resources, conc, workers, why = choose_resources(res)
    reasons += why
    rate = min(s["tokens_per_s_per_worker"] or fam["reference_rate"] for s in sources)
    if any(not s["tokens_per_s_per_worker"] for s in sources):
        reasons.append(f"cost: a checkpoint has no measured throughput; using the calibration "
                       f"machine's {fam['reference_rate']:.0f} tokens/s per worker")
    for s in sources:
        if s.get("rate_how"):
            reasons.append(f"cost: {s['key']}: {s['tokens_per_s_per_worker']:.0f} tokens/s per worker, {s['rate_how']}")

    # budget level: the long shape (3x the optimizer steps) if the budget runs every ranked
    # strategy twice at it, else the short one
    ranked = [s for s in cal["ranking"] if not strategies_allowed or s in strategies_allowed]
    if not ranked:
        raise PtftError(f"plan: none of the allowed strategies {strategies_allowed} was calibrated")
    p95 = scan["length"]["p95"]
    classes = scan.get("num_classes", 2)
    shapes = {lv: sizing.shape_overrides(n_train, p95, model_max, lv, classes) for lv in ("short", "long")}
    n_val_eval = min(n_val, shapes["short"]["finetune.max_val_examples"])
    cost = {lv: {s: trial_seconds(s, shapes[lv], n_train, n_val_eval, rate, fam["cost_model"]) for s in ranked}
            for lv in shapes}
    level = "long" if ("long" in cal.get("levels", ["short"]) and
                       sum(cost["long"][s] for s in ranked[:3]) * 2 / conc <= budget_s * 0.6) else "short"
    shape = shapes[level]
    reasons.append(f"shape: {n_train} training examples -> batch {shape['sweep.batch_sizes'][0]}, "
                   f"{shape['sweep.epochs'][0]:g} epoch(s) (>= {sizing.min_steps(level, classes)} optimizer steps"
                   f"{f' for {classes} classes' if classes > 2 else ''}, "
                   f"'{level}' level{' since the budget affords it' if level == 'long' else ''}), "
                   f"max_len {shape['finetune.max_len']} (95% of examples have <= {p95:.0f} tokens), "
                   f"{shape['finetune.max_val_examples']} validation examples per evaluation")

    # strategies: the calibrated ranking for this data size, trimmed to what the budget runs
    # at least twice each (a strategy tried once is decided by its one LR draw)
    keep = [s for s in ranked if s in cal["within_1pt"]] or ranked[:1]
    reasons.append(f"strategies: at ~{b} examples the calibration on {which} ranks {', '.join(ranked)}; "
                   f"{', '.join(keep)} came within 1 point of the best there")
    max_t = math.ceil(shape["sweep.epochs"][0] * shape["finetune.evals_per_epoch"]) + 1
    cheapest = min(cost[level][s] for s in keep)
    rescore_n, rescore_s = choose_rescore(scan, shape, budget_s, rate, reasons, fam["cost_model"])
    if budget_s < cheapest + STARTUP_S:
        raise PtftError(f"budget {budget_s:.0f} s is below one trial (estimated {cheapest:.0f} s + "
                        f"{STARTUP_S:.0f} s start-up): raise --budget to at least "
                        f"{math.ceil(cheapest + STARTUP_S)} s or lower finetune.max_examples")
    # ASHA's grace and reduction factor: the cheapest setting that, replayed on the calibration's
    # completed trials, lost <= 1 point of best val accuracy in every cell (derive_rules.asha_rule)
    asha = fam["asha"]
    grace, eta = max(1, round(asha["grace_fraction"] * max_t)), asha["reduction_factor"]

    def room() -> float:
        """What the trials themselves have: the budget less start-up and re-scoring (whose
        share may still give way to trials, below)."""
        return budget_s - STARTUP_S - rescore_s

    def fit(strategies: list[str]) -> tuple[int, int, float]:
        mean = sum(cost[level][s] for s in strategies) / len(strategies)
        n = _fit_trials(room(), conc, mean, grace, max_t, eta)
        return (min(n, max_trials) if max_trials else n), eta, mean

    n, eta, mean_full = fit(keep)
    while n < 2 * len(keep) and len(keep) > 1:
        # the kept strategies are tied within a point: give up the costliest, so the budget
        # buys more trials of the cheaper ones
        dropped = max(keep, key=lambda s: cost[level][s])
        keep.remove(dropped)
        reasons.append(f"strategies: dropped {dropped} (the costliest, ~{cost[level][dropped]:.0f} s a "
                       f"trial): the budget runs {n} trial(s), fewer than two per strategy")
        n, eta, mean_full = fit(keep)
    # a budget beyond PER_STRATEGY LR draws of each calibrated winner buys breadth: the next
    # strategies in the ranking (winners first: the others lost by > 1 point in calibration).
    # One winner takes depth first: it runs complete trials (no ASHA, below), lengthened up to
    # DEPTH_MAX x its epochs (deepen); breadth joins only where even the longest trials leave
    # more than PER_STRATEGY of them. (Measured on MiniLM, Rotten Tomatoes 1,000 labels, 10
    # minutes: an ASHA count of 11 trials of 'full' added gradual_unfreeze at full's LRs; both
    # trials of its first round stayed at the majority class for their 2 epochs, ASHA's grace
    # rung came before any trial left it, and the budget ran 6 of the 11 trials.)
    if len(keep) == 1 and n > PER_STRATEGY:
        longest = deeper(shape, min(MAX_EPOCHS, DEPTH_MAX * shape["sweep.epochs"][0]))
        t_long = trial_seconds(keep[0], longest, n_train, n_val_eval, rate, fam["cost_model"])
        n_long = _complete_trials(room(), conc, t_long)
        if n_long <= PER_STRATEGY:
            reasons.append(f"strategies: {keep[0]} alone, depth before breadth: the budget runs "
                           f"{n_long} complete trial(s) of {longest['sweep.epochs'][0]:g} epochs "
                           f"(~{t_long:.0f} s each), not more than {PER_STRATEGY} LR draws")
            ranked = keep[:]
    for s in ranked:
        if n <= PER_STRATEGY * len(keep):
            break
        if s not in keep:
            keep.append(s)
            n, eta, mean_full = fit(keep)
            reasons.append(f"strategies: added {s} (next in the ranking): the budget runs {n} trials, "
                           f"more than {PER_STRATEGY} LR draws per strategy")
    if n > PER_STRATEGY * len(keep):
        reasons.append(f"trials: capped at {PER_STRATEGY * len(keep)} ({PER_STRATEGY} LR draws per "
                       f"strategy); the budget allowed {n}")
        n = PER_STRATEGY * len(keep)
    # one strategy left: its trials differ only by LR within the calibrated winner's range, and
    # their early evaluations differ by noise, not by setting (the planned tweets sweeps: ASHA
    # stopped a trial on the grid winner's own path); the budget buys complete trials instead
    single = len(keep) == 1 and n > 1
    if single:
        n_done = _complete_trials(room(), conc, mean_full)
        n = min(n_done, n)  # n is already within max_trials (fit)
    if rescore_n and n < max(2, conc):
        # re-scoring chooses among trials: where its share of the budget leaves fewer trials
        # than slots (one 7-epoch tweets trial on 2 CPUs, one CPU idle), the share runs trials
        kept = rescore_n, rescore_s
        rescore_n, rescore_s = 0, 0.0
        more = fit(keep)[0]
        if single:
            more = min(more, _complete_trials(room(), conc, mean_full))  # room() without re-scoring
        if more > n or more < 2:
            i = next(i for i, r in enumerate(reasons) if r.startswith("selection:"))
            reasons[i] = "selection: the best trial by its validation examples; " + (
                f"re-scoring's ~{kept[1]:.0f} s would leave {n} trial(s) for {conc} slot(s), so that share "
                f"runs {more} instead" if more > n else "one trial: nothing to re-score it against")
            n = more
        else:
            rescore_n, rescore_s = kept
    if single:
        shape, n, max_t, mean_full = deepen(
            shape, n, conc, max_trials, room(), cost[level][keep[0]],
            lambda sh: trial_seconds(keep[0], sh, n_train, n_val_eval, rate, fam["cost_model"]), reasons)
        cost[level][keep[0]] = mean_full
    scheduler = {"type": "asha" if n > eta and not single else "none", "grace_period": grace, "max_t": max_t,
                 "reduction_factor": eta}
    frac = asha_fraction(n, grace, max_t, eta) if scheduler["type"] == "asha" else 1.0
    if scheduler["type"] == "asha":
        reasons.append(f"scheduler: ASHA over {max_t} evaluations per trial, grace {grace} "
                       f"({asha['grace_fraction']:.0%} of a trial), reduction factor {eta} (the cheapest "
                       f"setting within 1 point when replayed on the calibration's trials): expected "
                       f"{frac:.0%} of the full-length work of {n} trials")
    elif single:
        done, cut = whole_rounds(n, conc, mean_full, room())
        reasons.append(f"scheduler: none: one strategy ({keep[0]}) at LRs within its calibrated range, whose "
                       f"early evaluations differ by noise; the budget runs {done} complete trial(s)"
                       + (f" and {cut} more in a last round it stops short (each keeps its best evaluation)"
                          if cut else ""))
    else:
        reasons.append(f"scheduler: none: {n} trial(s) are too few to stop any early")
    # fewer trials than slots still take one trial's time; whole trials (no scheduler) run in
    # rounds of `conc`, the last cut at the budget
    work = max(mean_full, n * mean_full * frac / conc) if scheduler["type"] == "asha" else \
        min(math.ceil(n / conc) * mean_full, max(mean_full, room()))
    est = STARTUP_S + rescore_s + work
    reasons.append(f"trials: {n} ({conc} at a time) fit {budget_s:.0f} s at ~{mean_full:.0f} s per "
                   f"full-length trial (rate {rate:.0f} tokens/s per worker x the calibrated cost model)")
    rule = decoder_rule(sources)
    lr_ranges = {s: (rule["ranges"] if rule else cal["lr_ranges"])[s] for s in keep}
    reasons.append("learning rates: " + "; ".join(f"{s} {lo:.1e}..{hi:.1e}" for s, (lo, hi) in lr_ranges.items())
                   + (f" ({rule['why']})" if rule else " (the calibration's winning LRs, widened by half a grid "
                                                         "step but not past the LRs it measured)"))
    return {
        "strategies": keep, "lr_ranges": lr_ranges, "num_trials": n, "max_concurrent_trials": conc,
        "resources_per_trial": resources, "workers_per_trial": workers, "scheduler": scheduler,
        "epochs": shape["sweep.epochs"][0], "batch_size": shape["sweep.batch_sizes"][0],
        "max_len": shape["finetune.max_len"], "level": level, "calibration_bucket": b,
        "calibration": family, **({"lr_rule": rule} if rule else {}),
        "estimated_cost_s": round(est, 1),
        "rescore": {"top_k": RESCORE_TOP_K if rescore_n else 1, "val_examples": rescore_n,
                    "estimated_s": round(rescore_s, 1)},
        "cost_model": {"per_trial_s": {s: round(cost[level][s], 1) for s in keep},
                       "asha_fraction": round(frac, 3), "startup_s": STARTUP_S, "rate_tokens_per_s": rate,
                       "rescore_s": round(rescore_s, 1),
                       "how": "trials x mean full-length trial s x ASHA fraction / concurrency + start-up "
                              "+ re-scoring; "
                              "trial s = a + b_strategy * train tokens / rate + c * eval tokens / rate, "
                              "fitted on the calibration trials"},
        "shape": shape, "reasons": reasons,
    }


def deeper(shape: dict, epochs: float) -> dict:
    """The shape at `epochs`, with the evaluations per epoch sizing gives that length."""
    return {**shape, "sweep.epochs": [float(epochs)], "finetune.evals_per_epoch": sizing.evals_per_epoch_for(epochs)}


def deepen(shape: dict, n: int, conc: int, max_trials: int, room: float, per: float, seconds,
           reasons: list[str]):
    """One strategy at LRs within its calibrated winner's range: trials beyond one per slot buy
    little (their LRs are within 2x of each other), longer training buys much. Measured on MiniLM
    (planned sweeps, 16-class tweets): 10,000 labels, 2 -> 4 epochs: 0.575 -> 0.641 test accuracy;
    1,000 labels, 2 -> 4 -> 7 epochs: 0.312 -> 0.400 -> 0.468; the loop keeps each trial's best
    evaluation, so a longer trial cannot end below its own earlier evaluations. So where the
    budget runs more trials than slots, each trial gets the most epochs (up to DEPTH_MAX x the
    shape's minimum, at most MAX_EPOCHS) at which one trial per slot still fits (more trials
    only where the longest trials leave room for them).
    per: seconds of one trial of `shape`; seconds(shape) costs another shape.
    -> (shape, trials, evaluations per trial, seconds per trial)."""
    target = max(2, conc) if not max_trials else min(max(2, conc), max_trials)
    base = shape["sweep.epochs"][0]
    best = None
    longest = min(MAX_EPOCHS, DEPTH_MAX * base)
    for k in range(1, int((longest - base) / DEPTH_STEP) + 1):
        sh = deeper(shape, base + k * DEPTH_STEP)
        t = seconds(sh)
        fits = _complete_trials(room * DEPTH_SLACK, conc, t)
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


def choose_rescore(scan: dict, shape: dict, budget_s: float, rate: float, reasons: list[str],
                   cm: dict = CALIBRATED["cost_model"]) -> tuple[int, float]:
    """-> (validation examples to re-score the top trials on, 0 = off; its estimated seconds).
    As many as RESCORE_SHARE of the budget evaluates RESCORE_TOP_K times (the calibrated
    evaluation cost per token), up to the whole validation split; off where that is not more
    than the sweep's own evaluations use."""
    n_sweep = min(scan["examples"]["val"], shape["finetune.max_val_examples"] or scan["examples"]["val"])
    n_split = scan.get("val_split", scan["examples"]["val"])
    per_example = cm["eval"] * shape["finetune.max_len"] / rate
    # the sweep's own rule (finetune/select.py): the split capped at what the share pays for,
    # 0 where that is no more than the sweep evaluates on
    n = rescore_size(n_sweep, n_split, max(1, int(RESCORE_SHARE * budget_s / (RESCORE_TOP_K * per_example))))
    if not n:
        reasons.append(f"selection: the best trial by its {n_sweep} validation examples (re-scoring on more "
                       f"does not fit {RESCORE_SHARE:.0%} of the budget)")
        return 0, 0.0
    reasons.append(f"selection: the top {RESCORE_TOP_K} trials are re-scored on {n} validation examples "
                   f"(the sweep evaluates on {n_sweep}, and the best of many noisy readings flatters "
                   f"its trial), ~{RESCORE_TOP_K * n * per_example:.0f} s of the budget")
    return n, RESCORE_TOP_K * n * per_example


def whole_rounds(n: int, conc: int, trial_s: float, room: float) -> tuple[int, int]:
    """n whole trials in rounds of `conc` within `room` seconds -> (trials that complete, trials
    the room stops short: the last round's, started but not finished)."""
    rounds = max(1, int(room // trial_s))  # trial_s > 0: every cost model has a start-up term
    done = min(n, rounds * conc)
    return done, min(n - done, conc)


def _complete_trials(budget: float, conc: int, trial_s: float) -> int:
    """The most trials run to completion (no early stopping) whose work fits the budget."""
    return _fit_trials(budget, conc, trial_s, 1, 1, 2)  # grace >= max_t: nothing stops early


def _fit_trials(budget: float, conc: int, trial_s: float, grace: int, max_t: int, eta: int) -> int:
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
