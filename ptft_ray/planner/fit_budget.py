"""Every budget above a floor gets a plan that fits: where one trial of the sized shape does
not fit, the cheaper shape with the best forecast that does.

Cheaper shapes: fewer optimizer steps (down to a quarter of the sizing minimum) over all the
training rows (fewer steps see fewer of them, never the same few again: docs/decisions.md, "No
fewer rows"), each with fewer evaluations (TIGHT_EVALS on at most TIGHT_VAL examples), and each
again at a shorter max_len (the 90th and 50th percentiles of the texts, 128 and 64 tokens),
ranked by the forecast (planner/forecast.py prices steps; a cut is priced by the share of the training tokens
it drops). The strategies are those the calibration kept (within a point of its best), priced
by their calibrated accuracy gap: cheaper strategies it ranked lower lost badly where the
calibration had not measured them (docs/decisions.md, "Fit anything").
The floor is the cheapest of all these plus start-up. A plan shrunk so is blended with TF-IDF +
LR where that wins on validation (finetune/blend.py): its validation pass is reserved too.
"""
from __future__ import annotations

import dataclasses
import math

from ..errors import PtftError
from . import forecast, sizing
from .throughput import BATCH, SEQ_LEN

STEP_FRACTIONS = (1.0, 0.75, 0.5, 1 / 3, 0.25)
# a budget below one sized trial evaluates less: 2 validation passes a trial (one halfway, the
# last) on at most 250 examples; evaluations do not train, and at 5 minutes they were half the cost
TIGHT_EVALS, TIGHT_VAL = 2, 250
SMALLEST_BATCH = 8  # sizing's batch for the smallest data: a cheaper step, the same steps
TIE = 1e-3  # forecasts within 0.1 point are not told apart: the more steps, then the costlier
PROBE_TOKENS = BATCH * SEQ_LEN  # a throughput probe step's tokens (planner/throughput.py)
# shorter rows buy more steps; a cut is priced at this many points per halving of the training
# tokens kept, and rows under 64 tokens come last (docs/decisions.md, "Shorter rows for more steps")
TRUNCATION_POINTS_PER_HALVING = 1.0
SHORTER_LENS, MIN_CUT = (128, 64), 64


def kept_tokens(scan: dict, max_len: int, full: int) -> float:
    """The share of the training tokens rows of max_len keep, from the scan's length quantiles;
    without them, as if every text filled the sized length (the dearer guess)."""
    q = scan["length"].get("q")
    if not q:
        return min(1.0, max_len / full)
    return sum(min(v, max_len) for v in q) / max(sum(q), 1e-9)


def rates_by_len(sources: list[dict]) -> dict[int, float]:
    """max_len -> the slowest source's tokens/s timed at rows of that length, where every
    source was timed there (planner.throughput.retime_shrunk)."""
    lens = [set(s.get("rates_by_len", {})) for s in sources]
    return {L: min(s["rates_by_len"][L] for s in sources) for L in set.intersection(*lens)} if lens else {}


def rate_at(f, max_len: int) -> float:
    """The rate a shape of max_len is priced at: as timed at that length, else the slowest rate
    timed at any (a CPU runs short rows faster per token, a GPU slower)."""
    return f.rates.get(max_len) or min([f.rate, *f.rates.values()])


def truncation_gap(scan: dict, max_len: int, full: int) -> float:
    """The forecast's accuracy change (<= 0) for rows cut to max_len."""
    return -TRUNCATION_POINTS_PER_HALVING / 100 * math.log2(1 / max(kept_tokens(scan, max_len, full), 1e-3))


def shapes(f, scan: dict):
    """(tier, shape, optimizer steps) for every cheaper shape, the sized max_len
    first. Tier 0 is every length from 64 tokens up, ranked by the forecast; each shorter one is
    a tier of its own, taken only where nothing longer fits (the cut's price was measured at 64
    tokens)."""
    k, n = scan.get("num_classes", 2), f.n_train
    full = f.shape["finetune.max_len"]
    shorter = {min(full, sizing.max_len_for(scan["length"][q], full)) for q in ("p90", "p50") if q in scan["length"]}
    lens = [full] + sorted((shorter | {L for L in SHORTER_LENS if L < full}) - {full}, reverse=True)
    for max_len in lens:
        tier = 0 if max_len >= min(full, MIN_CUT) else lens.index(max_len)
        for bs, more in batches(min(f.shape["sweep.batch_sizes"][0], sizing.batch_size_for(n)), max_len):
            if n < bs:
                continue
            per_epoch = n // bs
            for sf in STEP_FRACTIONS:
                steps = max(1, math.ceil(sf * more * sizing.min_steps("short", k)))
                epochs = round(max(steps / per_epoch, 1 / per_epoch), 3)
                shape = {**f.shape, "sweep.batch_sizes": [bs], "sweep.epochs": [epochs],
                         "finetune.evals_per_epoch": sizing.evals_per_epoch_for(epochs, TIGHT_EVALS),
                         "finetune.max_val_examples": min(f.shape["finetune.max_val_examples"], TIGHT_VAL),
                         "finetune.max_len": max_len}
                yield tier, shape, steps


def batches(sized: int, max_len: int) -> list[tuple[int, int]]:
    """(batch size, steps multiplier): the sized batch, SMALLEST_BATCH at the same steps (a
    cheaper step), and half the sized batch at twice the steps (the same examples and tokens,
    so the same forecast and cost: smaller batches come first and win that tie; more steps
    trained further, docs/decisions.md, "Shorter rows for more steps"). The half batch only
    where a step still holds the probe's tokens: the cost is priced per token as timed in steps
    that large, and smaller steps ran slower than priced."""
    fits = sized // 2 >= SMALLEST_BATCH and sized // 2 * max_len >= PROBE_TOKENS
    half = [(sized // 2, 2)] if fits else []
    return sorted({(sized, 1), (SMALLEST_BATCH, 1), *half}, key=lambda b: (b[0], -b[1]))


def probe_of(scan: dict) -> forecast.Probe:
    """The scan's probe; a scan without one (a plan from numbers alone) ranks from the majority class."""
    if scan.get("probe"):
        return forecast.Probe.of(scan["probe"])
    m = scan.get("majority_fraction", 0.5)
    return forecast.Probe(m, m, m, 1)


def shrink(f, keep: list[str], scan: dict) -> list[str]:
    """Set f's shape and costs to the best-forecast (shape, strategy) that fits the budget;
    -> the one strategy it runs. Raises with the floor where none fits."""
    from .cost import trial_seconds

    k, n = scan.get("num_classes", 2), f.n_train
    probe, cm = probe_of(scan), f.fam["cost_model"]
    sized = min(f.cost[s] for s in keep)
    gap = f.cal.get("mean_gap", {})  # each strategy's calibrated accuracy below the best one's
    fits, floor = [], None
    full = f.shape["finetune.max_len"]
    for tier, shape, steps in shapes(f, scan):
        cut = truncation_gap(scan, shape["finetune.max_len"], full)
        score = forecast.rule_accuracy(probe, n, k, shape["sweep.epochs"][0] * n, f.family) + cut
        n_val = min(f.n_val_eval, shape["finetune.max_val_examples"])
        after = sum(after_trials(f, scan, shape["finetune.max_len"]))
        for s in keep:
            cost = trial_seconds(s, shape, n, n_val, rate_at(f, shape["finetune.max_len"]), cm)
            floor = min(floor or cost + after, cost + after)
            if cost + after + f.startup <= f.budget_s:
                fits.append((tier, score + gap.get(s, min(gap.values(), default=0.0)), shape, cost, s, cut, steps))
    best, f.floor = pick(fits), math.ceil(floor + f.startup + f.spent)
    if best is None:
        least = f.floor
        planning = f" + {f.spent:.0f} s spent planning" if f.spent else ""
        raise PtftError(f"budget {f.budget_s + f.spent:.0f} s is below the floor of {least} s: "
                        f"the cheapest plan (the cheapest strategy, a quarter of the sizing minimum's "
                        f"steps, the shortest max_len) takes ~{floor:.0f} s + {f.startup:.0f} s start-up{planning}; "
                        f"raise --budget to at least {least} s")
    _, score, shape, cost, s, cut, _ = best
    f.shrunk_to = score
    shape = {**shape, "finetune.blend": "auto"}
    f.truncation_gap, f.rate = round(cut, 4), rate_at(f, shape["finetune.max_len"])
    f.test_s, f.blend_s = after_trials(f, scan, shape["finetune.max_len"])
    f.reasons.append(
        f"budget: one trial of the sized shape (~{sized:.0f} s) does not fit {f.budget_s:.0f} s; the cheaper shape "
        f"with the best forecast that fits: {s}, {shape['sweep.epochs'][0]:g} epoch(s) of {n} training rows at "
        f"batch {shape['sweep.batch_sizes'][0]}, max_len {shape['finetune.max_len']}{cut_text(scan, shape, full, cut)} "
        f"(~{cost:.0f} s; expected test accuracy {score:.3f}); floor {math.ceil(floor + f.startup)} s")
    f.reasons.append(f"blend: a model this short of its sized training can fall under TF-IDF + LR; the export is "
                     f"blended with it where that wins on validation (finetune.blend=auto, ~{f.blend_s:.0f} s reserved)")
    f.shape = shape
    f.n_val_eval = min(f.n_val_eval, shape["finetune.max_val_examples"])
    f.cost = {st: f.seconds(st, shape) for st in f.ranked}
    f.rescore_n, f.rescore_s = 0, 0.0
    i = next((i for i, r in enumerate(f.reasons) if r.startswith("selection:")), None)
    if i is not None:
        f.reasons[i] = "selection: the best trial by its validation examples (no room to re-score)"
    f.max_t = math.ceil(shape["sweep.epochs"][0] * shape["finetune.evals_per_epoch"]) + 1
    return [s]


def all_cpu_rates(sources: list[dict], res: dict) -> dict | None:
    """One trial on all of a node's CPUs as the one source was timed so (throughput.retime_shrunk),
    on a cluster without GPUs: {threads, rates_by_len, speedup}. Not with several checkpoints:
    there parallel trials draw among models, not only among LRs."""
    if res.get("gpus") or len(sources) != 1:
        return None
    return sources[0].get("all_cpus")


def on_all_cpus(f):
    """A copy of facts `f` as one trial at a time on all of a node's CPUs (their torch threads):
    rows of a timed length at the rate timed so, the sized length at its one-thread rate times
    the speedup timed beside it."""
    from .cost import trial_seconds

    a, cm = f.all_cpus, f.fam["cost_model"]
    rate, n = f.rate * a["speedup"], a["threads"]
    why = (f"resources: CPU only, a budget below one trial of the sized shape: one trial at a time on all {n} "
           f"CPUs of a node ({n} torch threads, {a['speedup']:.2f}x one thread's rate as timed): trials of one "
           f"shape at LRs within the calibrated range buy LR draws side by side, one on {n} threads buys steps")
    return dataclasses.replace(
        f, resources={"CPU": float(n)}, conc=1, rate=rate, rates=dict(a["rates_by_len"]),
        cost={s: trial_seconds(s, f.shape, f.n_train, f.n_val_eval, rate, cm) for s in f.cost},
        reasons=[why if r.startswith("resources:") else r for r in f.reasons])


def shrink_widest(f, keep: list[str], scan: dict):
    """`shrink`, and where a node's CPUs were timed together (f.all_cpus) again as one trial on
    all of them; -> (the facts with the better forecast, its one strategy). Below the sized shape
    every trial runs the same shape: parallel one-CPU trials buy LR draws, one trial on n threads
    buys steps, which the forecast prices; parallel trials keep a tie (docs/decisions.md, "One
    trial on all CPUs"). Where neither fits, the lower floor is the one told."""
    options = [f] + ([on_all_cpus(f)] if f.all_cpus else [])
    done, refused = [], []
    for g in options:
        try:
            done.append((g, shrink(g, keep, scan)))
        except PtftError as e:
            refused.append((g.floor, e))
    if not done:
        raise min(refused, key=lambda r: r[0])[1]
    g, keep = max(done, key=lambda d: d[0].shrunk_to - (TIE if d[0] is not f else 0.0))
    if g is f and len(options) > 1:
        wide = options[1]
        f.reasons.append(f"resources: one trial on all {wide.resources['CPU']:g} CPUs was priced too "
                         + (f"(expected test accuracy {wide.shrunk_to:.3f}): not better" if wide.shrunk_to
                            is not None else f"(floor {wide.floor} s): it does not fit"))
    return g, keep


def pick(fits: list[tuple]) -> tuple | None:
    """(tier, score, shape, cost, strategy, cut, steps) of the lowest tier's best: among
    forecasts within TIE of its top, the most steps, then the costliest; the first of equals
    (shapes come smaller batch first)."""
    if not fits:
        return None
    tier = min(c[0] for c in fits)
    top = max(c[1] for c in fits if c[0] == tier)
    return max((c for c in fits if c[0] == tier and c[1] >= top - TIE), key=lambda c: (c[6], c[3]))


def test_seconds(scan: dict, max_len: int, full: int, rate: float, cm: dict) -> float:
    """The export's test pass at rows of max_len (sized: full). It batches rows sorted by length,
    so it reads about the mean length a row (not max_len: pads), less the share a cut drops."""
    mean = min(scan["length"].get("mean", full), full)
    if scan["length"].get("q"):
        mean *= min(1.0, kept_tokens(scan, max_len, full) / max(kept_tokens(scan, full, full), 1e-9))
    else:
        mean = min(mean, max_len)
    return cm["eval"] * scan["examples"].get("test", 0) * mean / rate


def after_trials(f, scan: dict, max_len: int) -> tuple[float, float]:
    """-> (test pass s, blend s) after the trials of a shape of max_len, at that length's rate:
    the export's test pass, and finetune.blend=auto's validation pass of the export (at most
    TIGHT_VAL rows) and TF-IDF + LR's fit."""
    cm, rate = f.fam["cost_model"], rate_at(f, max_len)
    blend = 2.0 + cm["eval"] * min(f.n_val_eval, TIGHT_VAL) * max_len / rate
    return test_seconds(scan, max_len, f.shape["finetune.max_len"], rate, cm), blend


def cut_text(scan: dict, shape: dict, full: int, cut: float) -> str:
    """', keeping N % of the training tokens (-X points)' where the rows are cut shorter."""
    max_len = shape["finetune.max_len"]
    if max_len >= full:
        return ""
    return (f" (sized {full}), keeping {kept_tokens(scan, max_len, full):.0%} of the training tokens "
            f"({100 * cut:+.1f} points)")
