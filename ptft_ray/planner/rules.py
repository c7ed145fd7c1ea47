"""The planner's decisions: pure functions of (data scan, checkpoints, budget, cluster).

Every choice returns its reason. The strategy ranking, LR ranges and cost coefficients come
from `calibrated.json`, which benchmarks/derive_rules.py writes from the measured calibration
table (benchmarks/results/calibration.json): no guess that a measurement could replace."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import PtftError
from . import sizing
from .cost import asha_fraction, complete_trials, fit_trials, trial_seconds, trial_tokens, whole_rounds  # noqa: F401 - re-exported
from .families import bucket, calibration, family_of
from .decoder import decoder_rule
from .depth import DEPTH_MAX, MAX_EPOCHS, deepen, deeper
from .rescore import RESCORE_TOP_K, choose_rescore
from .fit_budget import all_cpu_rates, rates_by_len, shrink_widest, test_seconds

# reserved from the budget for the sweep's own start (Ray, data encoding) and the export; the test
# pass after the trials is priced apart (test_seconds; tests/test_planner.py: 60 s kept to 60 + 20)
STARTUP_S = 15.0
# LR draws per strategy before the budget is spent on more strategies (8 draws spread evenly
# over a 30x calibrated range are 30^(1/7) = 1.6x apart)
PER_STRATEGY = 8


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


@dataclass
class Facts:
    """What a plan is chosen from: the task, the calibration, the cluster, the trial shape and
    each strategy's cost at it; `reasons` collects one line per choice."""
    budget_s: float              # what is left for the sweep (the command's budget less `spent`)
    max_trials: int
    family: str
    fam: dict
    cal: dict
    bucket: str
    which: str
    resources: dict
    conc: int
    workers: int
    rate: float
    n_train: int
    n_val_eval: int
    ranked: list
    level: str
    shape: dict
    cost: dict                   # strategy -> s a trial at the chosen level
    reasons: list
    max_t: int = 0
    grace: int = 1
    eta: int = 2
    rescore_n: int = 0
    rescore_s: float = 0.0
    startup: float = STARTUP_S
    test_s: float = 0.0          # the export's test pass after the trials (fit_budget re-prices it at a cut)
    blend_s: float = 0.0         # finetune.blend=auto's pass after them, where a shrunk plan blends
    spent: float = 0.0           # of the budget, spent before the plan was made (planning)
    truncation_gap: float = 0.0  # the forecast's price of rows cut under the sized max_len
    rates: dict = field(default_factory=dict)  # max_len -> tokens/s timed at rows that long
    all_cpus: dict | None = None  # one trial on a node's CPUs: threads, rates_by_len, speedup (retimed)
    shrunk_to: float | None = None  # a shrunk plan's forecast (fit_budget.shrink)
    floor: float = 0.0           # a shrunk plan's cheapest trial and what follows it, s

    def reserve(self) -> float:  # what the trials cannot have: start-up and the passes after them
        return self.startup + self.test_s + self.blend_s

    def room(self) -> float:
        """What the trials have: the budget less the reserve and re-scoring (which may give way)."""
        return self.budget_s - self.reserve() - self.rescore_s

    def seconds(self, strategy: str, shape: dict) -> float:
        return trial_seconds(strategy, shape, self.n_train, self.n_val_eval, self.rate, self.fam["cost_model"])

    def fit(self, strategies: list[str]) -> tuple[int, float]:
        """-> (trials the room holds under ASHA, within max_trials; mean s a trial)."""
        mean = sum(self.cost[s] for s in strategies) / len(strategies)
        n = fit_trials(self.room(), self.conc, mean, self.grace, self.max_t, self.eta)
        return (min(n, self.max_trials) if self.max_trials else n), mean


def choose(scan: dict, sources: list[dict], budget_s: float, res: dict, max_trials: int = 0,
           strategies_allowed: list[str] | None = None, spent_s: float = 0.0) -> dict:
    """spent_s: of budget_s, what is gone before the trials can start (a command's planning):
    the plan is chosen for what is left."""
    f = facts(scan, sources, budget_s - spent_s, res, max_trials, strategies_allowed)
    f.spent, f.rates, f.all_cpus = spent_s, rates_by_len(sources), all_cpu_rates(sources, res)
    f, keep = candidates(f, scan)
    keep, n, mean_full = count_trials(f, keep)
    single = len(keep) == 1 and n > 1
    n, mean_full = trade_rescoring(f, keep, n, mean_full, single)
    if single:
        f.shape, n, f.max_t, mean_full = deepen(f.shape, n, f.conc, f.max_trials, f.room(), f.cost[keep[0]],
                                                lambda sh: f.seconds(keep[0], sh), f.reasons)
        f.cost[keep[0]] = mean_full
    scheduler, frac = choose_scheduler(f, keep, n, mean_full, single)
    return plan_dict(f, sources, keep, n, mean_full, scheduler, frac)


def facts(scan: dict, sources: list[dict], budget_s: float, res: dict, max_trials: int,
          strategies_allowed: list[str] | None) -> Facts:
    """The calibration of the checkpoints' family at this data size and task type, the
    cluster's slots, the throughput, and the trial shape: 'long' (3x the optimizer steps)
    where the budget runs every ranked strategy twice at it, else 'short'."""
    n_train, n_val = scan["examples"]["train"], scan["examples"]["val"]
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
    rate = source_rate(sources, fam, reasons)
    ranked = [s for s in cal["ranking"] if not strategies_allowed or s in strategies_allowed]
    if not ranked:
        raise PtftError(f"plan: none of the allowed strategies {strategies_allowed} was calibrated")
    p95, classes = scan["length"]["p95"], scan.get("num_classes", 2)
    model_max = min(s["max_seq_len"] for s in sources)
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
    # the export's test evaluation runs after Tune stops: reserved with the start-up
    test_s = test_seconds(scan, shape["finetune.max_len"], shape["finetune.max_len"], rate, fam["cost_model"])
    return Facts(budget_s, max_trials, family, fam, cal, b, which, resources, conc, workers, rate, n_train,
                 n_val_eval, ranked, level, shape, cost[level], reasons, test_s=test_s)


def source_rate(sources: list[dict], fam: dict, reasons: list[str]) -> float:
    """The slowest checkpoint's tokens/s per worker (the calibration machine's where unmeasured)."""
    rate = min(s["tokens_per_s_per_worker"] or fam["reference_rate"] for s in sources)
    if any(not s["tokens_per_s_per_worker"] for s in sources):
        reasons.append(f"cost: a checkpoint has no measured throughput; using the calibration "
                       f"machine's {fam['reference_rate']:.0f} tokens/s per worker")
    for s in sources:
        if s.get("rate_how"):
            reasons.append(f"cost: {s['key']}: {s['tokens_per_s_per_worker']:.0f} tokens/s per worker, {s['rate_how']}")
    return rate


def candidates(f: Facts, scan: dict) -> tuple[Facts, list[str]]:
    """The strategies within a point of the calibrated best; the re-scoring share; ASHA's
    grace and reduction factor. A budget below one trial gets a cheaper shape, or the floor,
    maybe as one trial on all of a node's CPUs: -> (the facts the plan is made of, strategies)."""
    keep = [s for s in f.ranked if s in f.cal["within_1pt"]] or f.ranked[:1]
    f.reasons.append(f"strategies: at ~{f.bucket} examples the calibration on {f.which} ranks "
                     f"{', '.join(f.ranked)}; {', '.join(keep)} came within 1 point of the best there")
    f.max_t = math.ceil(f.shape["sweep.epochs"][0] * f.shape["finetune.evals_per_epoch"]) + 1
    cheapest = min(f.cost[s] for s in keep)
    f.rescore_n, f.rescore_s = choose_rescore(scan, f.shape, f.budget_s, f.rate, f.reasons, f.fam["cost_model"])
    if f.budget_s < cheapest + f.reserve():  # a cheaper shape that fits, or the floor (fit_budget.py)
        f, keep = shrink_widest(f, keep, scan)
    # the cheapest ASHA setting that, replayed on the calibration's completed trials, lost
    # <= 1 point of best val accuracy in every cell (derive_rules.asha_rule)
    asha = f.fam["asha"]
    f.grace, f.eta = max(1, round(asha["grace_fraction"] * f.max_t)), asha["reduction_factor"]
    return f, keep


def count_trials(f: Facts, keep: list[str]) -> tuple[list[str], int, float]:
    """Trials for the kept strategies: at least two per strategy (the costliest tied one gives
    way), then breadth beyond PER_STRATEGY LR draws each, capped there. One winner takes depth
    first (docs/decisions.md, "depth before breadth")."""
    keep, ranked = keep[:], f.ranked
    n, mean_full = f.fit(keep)
    while n < 2 * len(keep) and len(keep) > 1:
        dropped = max(keep, key=lambda s: f.cost[s])
        keep.remove(dropped)
        f.reasons.append(f"strategies: dropped {dropped} (the costliest, ~{f.cost[dropped]:.0f} s a "
                         f"trial): the budget runs {n} trial(s), fewer than two per strategy")
        n, mean_full = f.fit(keep)
    if len(keep) == 1 and n > PER_STRATEGY:
        longest = deeper(f.shape, min(MAX_EPOCHS, DEPTH_MAX * f.shape["sweep.epochs"][0]))
        t_long = f.seconds(keep[0], longest)
        n_long = complete_trials(f.room(), f.conc, t_long)
        if n_long <= PER_STRATEGY:
            f.reasons.append(f"strategies: {keep[0]} alone, depth before breadth: the budget runs "
                             f"{n_long} complete trial(s) of {longest['sweep.epochs'][0]:g} epochs "
                             f"(~{t_long:.0f} s each), not more than {PER_STRATEGY} LR draws")
            ranked = keep[:]
    for s in ranked:
        if n <= PER_STRATEGY * len(keep):
            break
        if s not in keep:
            keep.append(s)
            n, mean_full = f.fit(keep)
            f.reasons.append(f"strategies: added {s} (next in the ranking): the budget runs {n} trials, "
                             f"more than {PER_STRATEGY} LR draws per strategy")
    if n > PER_STRATEGY * len(keep):
        f.reasons.append(f"trials: capped at {PER_STRATEGY * len(keep)} ({PER_STRATEGY} LR draws per "
                         f"strategy); the budget allowed {n}")
        n = PER_STRATEGY * len(keep)
    return keep, n, mean_full


def trade_rescoring(f: Facts, keep: list[str], n: int, mean_full: float, single: bool) -> tuple[int, float]:
    """One strategy runs complete trials (its trials differ only by LR, and their early
    evaluations by noise). Where re-scoring's share leaves fewer trials than slots, the share
    runs trials instead."""
    if single:
        n = min(complete_trials(f.room(), f.conc, mean_full), n)  # n is already within max_trials
    if f.rescore_n and n < max(2, f.conc):
        kept = f.rescore_n, f.rescore_s
        f.rescore_n, f.rescore_s = 0, 0.0
        more = f.fit(keep)[0]
        if single:
            more = min(more, complete_trials(f.room(), f.conc, mean_full))  # room() without re-scoring
        if more > n or more < 2:
            i = next(i for i, r in enumerate(f.reasons) if r.startswith("selection:"))
            f.reasons[i] = "selection: the best trial by its validation examples; " + (
                f"re-scoring's ~{kept[1]:.0f} s would leave {n} trial(s) for {f.conc} slot(s), so that share "
                f"runs {more} instead" if more > n else "one trial: nothing to re-score it against")
            n = more
        else:
            f.rescore_n, f.rescore_s = kept
    return n, mean_full


def choose_scheduler(f: Facts, keep: list[str], n: int, mean_full: float, single: bool) -> tuple[dict, float]:
    """-> (the scheduler, the expected share of full-length work ASHA spends)."""
    grace, max_t, eta = f.grace, f.max_t, f.eta
    scheduler = {"type": "asha" if n > eta and not single else "none", "grace_period": grace, "max_t": max_t,
                 "reduction_factor": eta}
    frac = asha_fraction(n, grace, max_t, eta) if scheduler["type"] == "asha" else 1.0
    if scheduler["type"] == "asha":
        f.reasons.append(f"scheduler: ASHA over {max_t} evaluations per trial, grace {grace} "
                         f"({f.fam['asha']['grace_fraction']:.0%} of a trial), reduction factor {eta} (the cheapest "
                         f"setting within 1 point when replayed on the calibration's trials): expected "
                         f"{frac:.0%} of the full-length work of {n} trials")
    elif single:
        done, cut = whole_rounds(n, f.conc, mean_full, f.room())
        f.reasons.append(f"scheduler: none: one strategy ({keep[0]}) at LRs within its calibrated range, whose "
                         f"early evaluations differ by noise; the budget runs {done} complete trial(s)"
                         + (f" and {cut} more in a last round it stops short (each keeps its best evaluation)"
                            if cut else ""))
    else:
        f.reasons.append(f"scheduler: none: {n} trial(s) are too few to stop any early")
    return scheduler, frac


def plan_dict(f: Facts, sources: list[dict], keep: list[str], n: int, mean_full: float, scheduler: dict,
              frac: float) -> dict:
    """The plan with its estimated cost (fewer trials than slots still take one trial's time;
    whole trials run in rounds of `conc`, the last cut at the budget) and its LR ranges."""
    work = max(mean_full, n * mean_full * frac / f.conc) if scheduler["type"] == "asha" else \
        min(math.ceil(n / f.conc) * mean_full, max(mean_full, f.room()))
    est = f.spent + f.reserve() + f.rescore_s + work
    f.reasons.append("stopping: trials (and the sweep) end once none can beat the best beyond validation noise "
                     "(finetune/stopping.py)")
    left = f" (what {f.spent:.0f} s of planning left)" if f.spent else ""
    f.reasons.append(f"trials: {n} ({f.conc} at a time) fit {f.budget_s:.0f} s{left} at ~{mean_full:.0f} s per "
                     f"full-length trial (rate {f.rate:.0f} tokens/s per worker x the calibrated cost model)")
    rule = decoder_rule(sources)
    lr_ranges = {s: (rule["ranges"] if rule else f.cal["lr_ranges"])[s] for s in keep}
    f.reasons.append("learning rates: " + "; ".join(f"{s} {lo:.1e}..{hi:.1e}" for s, (lo, hi) in lr_ranges.items())
                     + (f" ({rule['why']})" if rule else " (the calibration's winning LRs, widened by half a grid "
                                                           "step but not past the LRs it measured)"))
    shape = f.shape
    return {
        "strategies": keep, "lr_ranges": lr_ranges, "num_trials": n, "max_concurrent_trials": f.conc,
        "resources_per_trial": f.resources, "workers_per_trial": f.workers, "scheduler": scheduler,
        "epochs": shape["sweep.epochs"][0], "batch_size": shape["sweep.batch_sizes"][0],
        "max_len": shape["finetune.max_len"], "level": f.level, "calibration_bucket": f.bucket,
        "calibration": f.family, **({"lr_rule": rule} if rule else {}),
        # the best kept strategy's calibrated accuracy below the calibration's best (the forecast's)
        "strategy_gap": round(max(f.cal.get("mean_gap", {}).get(s, 0.0) for s in keep), 4),
        "truncation_gap": f.truncation_gap,
        "estimated_cost_s": round(est, 1), "reserve_s": round(f.reserve(), 1),
        "rescore": {"top_k": RESCORE_TOP_K if f.rescore_n else 1, "val_examples": f.rescore_n,
                    "estimated_s": round(f.rescore_s, 1)},
        "cost_model": {"per_trial_s": {s: round(f.cost[s], 1) for s in keep},
                       "asha_fraction": round(frac, 3), "startup_s": STARTUP_S, "rate_tokens_per_s": f.rate,
                       "test_eval_s": round(f.test_s + f.blend_s, 1),
                       "rescore_s": round(f.rescore_s, 1),
                       "how": "trials x mean full-length trial s x ASHA fraction / concurrency + start-up "
                              "+ re-scoring; "
                              "trial s = a + b_strategy * train tokens / rate + c * eval tokens / rate, "
                              "fitted on the calibration trials"},
        "shape": shape, "reasons": f.reasons, "stop_on_noise": True, "shrunk": f.shrunk_to is not None,
    }
