"""What a plan is expected to buy: test accuracy with an 80 % interval, before anything is spent.

The forecast is a fitted rule on what is measured before training (benchmarks/forecast.py
fits it on the measured quality cells and planned sweeps, and writes forecast.json):

    error reduction over TF-IDF + LR   r = a + d * gap + e * lead + c * min(0, log2 x)
                                       (no gap measured: a + b * log10(labels per class) + c * ...)
    expected accuracy                  probe + r * (1 - probe), at least the majority class's share

where `probe` is TF-IDF + LR trained on the task's training rows and scored on its validation
rows (seconds), gap is the frozen encoder's error reduction over TF-IDF + LR on the same few
hundred rows (planner/embed_probe.py; measured for a Hugging Face encoder, or for our checkpoint
of one on the directory it started from), lead is that encoder's accuracy, moved to the rows the
trials train on by the probe's own slope per doubling of labels, as an error reduction over the
probe itself (read against this task's own validation split), and x is the examples a
trial trains on (epochs x rows) over the sizing minimum's (planner/sizing.py: its minimum steps
at its batch size): fewer cost what the calibration's learning curves lost per halving; more are
not credited (the fit found no reliable gain past the minimum). The fit reads the probe as a
plan reads it, so the interval's half-width, a conformal quantile of the fitted cells' errors with their whole task
left out (a user's task is never one the fit has seen), holds the probe's noise at the fitted
cells' validation sizes; a probe on fewer rows widens it (`expected`). Continued pretraining's
gain is a second fit on labels per class. The coefficients, their error and the cells they come
from are in forecast.json (docs/decisions.md, "The forecast fitted on what a plan reads").
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from . import sizing

FITTED = json.loads(Path(__file__).with_name("forecast.json").read_text())
Z80 = 1.2816  # two-sided 80 % of a normal


@dataclass(frozen=True)
class Probe:
    """The task measured before training: TF-IDF + LR on the training rows scored on the
    validation rows, and the same on half the training rows (how much labels still buy)."""
    accuracy: float
    accuracy_half: float
    majority: float
    n_val: int
    embed_gap: float | None = None  # planner/embed_probe.py; None where not measured
    embed_pooled: float | None = None  # the frozen encoder's own accuracy there (the `lead` term)
    # the training rows that reading stood on over the probe's (the encoder probe reads at most a
    # few hundred): `lead` moves the reading to the probe's rows as the probe's slope says
    embed_share: float = 1.0

    @property
    def sd(self) -> float:
        """The probe accuracy's sampling standard deviation on its validation rows."""
        return math.sqrt(max(self.accuracy * (1 - self.accuracy), 1e-9) / max(self.n_val, 1))

    @property
    def slope(self) -> float:
        """Accuracy per doubling of labels, from the last halving; a half probe that scored higher
        is noise on few validation rows: labels are not taken to cost accuracy, so it is 0 or above."""
        return max(0.0, self.accuracy - self.accuracy_half)

    @classmethod
    def of(cls, d: dict) -> "Probe":
        share = d["embed_rows"] / d["n_train"] if d.get("embed_rows") and d.get("n_train") else 1.0
        return cls(d["tfidf_lr_val"], d["tfidf_lr_val_half"], d["majority_val"], d["n_val"], d.get("embed_gap"),
                   d.get("embed_pooled"), min(1.0, share))

    @property
    def lead(self) -> float | None:
        """The frozen encoder's error reduction over this probe, its reading moved to the probe's
        rows (None where not measured)."""
        if self.embed_pooled is None:
            return None
        return lead(self.embed_pooled, self.accuracy, self.slope, self.embed_share)

    def with_labels(self, factor: float) -> "Probe":
        """The probe at `factor` x the labels: its accuracy moves by `slope` per doubling (TF-IDF
        learning curves are close to linear in log labels over a decade); the encoder's reading
        stays where it was read, a share of rows `factor` times smaller, so `lead` moves it alike."""
        if factor == 1:
            return self
        acc = min(1.0, max(self.majority, self.accuracy + self.slope * math.log2(factor)))
        return replace(self, accuracy=acc, accuracy_half=acc - self.slope,
                       embed_share=self.embed_share / factor)


def lead(embed_pooled: float, probe: float, slope: float = 0.0, share: float = 1.0) -> float | None:
    """The frozen encoder's accuracy as an error reduction over the probe's (the `lead` term),
    the encoder read on `share` of the probe's training rows and moved to them by the probe's
    `slope` per doubling: a reading on 512 of 10,000 rows is not taken as the encoder falling
    behind (docs/decisions.md, "The encoder's reading moved to the trials' rows"). None where the
    probe makes no error."""
    if probe >= 1.0:
        return None
    at_rows = min(1.0, embed_pooled + slope * math.log2(1.0 / share))
    return (at_rows - probe) / (1.0 - probe)


def params(family: str, gap: float | None = None) -> dict:
    """The fitted family, else the MiniLM encoder's (the nearest measured to a Hugging Face
    model); a family fitted with the gap term (`d`) is taken without it where no gap was measured."""
    fams = FITTED["families"]
    prm = fams.get(family) or fams["hf_encoder"]
    return fams[prm["without_gap"]] if gap is None and "without_gap" in prm else prm


def trained_fraction(seen: float, n_train: int, classes: int) -> float:
    """x: the examples a trial trains on over the sizing minimum's (its minimum steps at its
    batch size); benchmarks/forecast.py fits on the same x."""
    return seen / (sizing.min_steps("short", classes) * sizing.batch_size_for(n_train))


def reduction(probe: Probe, n_train: int, classes: int, seen: float, family: str) -> float:
    """r: the fitted rule's error reduction over the probe; seen: the examples a trial trains on
    (epochs x rows)."""
    prm = params(family, probe.embed_gap)
    x = max(1e-3, trained_fraction(seen, n_train, classes))
    r = prm["a"] + prm.get("b", 0.0) * math.log10(max(1.0, n_train / classes)) + prm["c"] * min(0.0, math.log2(x))
    return r + prm.get("d", 0.0) * (probe.embed_gap or 0.0) + prm.get("e", 0.0) * (probe.lead or 0.0)


def rule_accuracy(probe: Probe, n_train: int, classes: int, seen: float, family: str) -> float:
    """The fitted rule's test accuracy before the majority floor: what ranks a plan's shapes, as
    the floor would tie every shape under the majority share (planner/fit_budget.py)."""
    return round(min(1.0, probe.accuracy + reduction(probe, n_train, classes, seen, family) * (1.0 - probe.accuracy)), 4)


def expected(probe: Probe, n_train: int, classes: int, seen: float, family: str,
             shift: float = 0.0) -> list[float]:
    """[low, mid, high] test accuracy of the planned sweep's best model (80 %); seen: the
    examples a trial trains on (epochs x rows); shift: the plan's own price (strategy, truncation),
    taken before the majority floor, which holds for the model as planned."""
    prm = params(family, probe.embed_gap)
    r = reduction(probe, n_train, classes, seen, family)
    mid = at_majority(rule_accuracy(probe, n_train, classes, seen, family) + shift, probe.majority)
    # the fit's held-out errors hold the probe noise of its cells (55 to 2,000 validation rows);
    # mid moves by (1 - r) per point of probe error, which governs where it is the wider
    half = max(prm["half_width_points"] / 100, Z80 * (1 - r) * probe.sd)
    return [round(max(0.0, mid - half), 4), round(min(1.0, mid), 4), round(min(1.0, mid + half), 4)]


def at_majority(mid: float, majority: float) -> float:
    """A trained classifier is forecast no less than the majority class's share: the sweeps that
    learnt nothing of a task (Commons, Bundestag) realised that share, not the less a negative
    gap reads (docs/decisions.md, "The forecast floored at the majority share")."""
    return max(mid, majority)


def continued_pretraining(n_train: int, classes: int) -> list[float]:
    """[low, mid, high] test-accuracy points continued pretraining on the task's own text adds."""
    c = FITTED["continued_pretraining"]
    mid = c["u"] + c["v"] * math.log10(max(1.0, n_train / classes))
    half = c["half_width_points"]
    return [round(mid - half, 2), round(mid, 2), round(mid + half, 2)]


def of_plan(p: dict, probe: Probe, n_train: int, classes: int, family: str) -> list[float]:
    """`expected` for a plan: its trials' optimizer steps on the training rows it uses (a plan
    that trains on fewer rows is forecast from the probe at those rows), less its best
    strategy's calibrated gap to the best strategy and the price of rows cut shorter."""
    rows = min(n_train, p["shape"].get("finetune.max_examples") or n_train)
    shift = p.get("strategy_gap", 0.0) + p.get("truncation_gap", 0.0)
    return on_rows(probe, n_train, rows, classes, p["epochs"] * rows, family, shift)


def on_rows(probe: Probe, n_train: int, rows: int, classes: int, seen: float, family: str,
            shift: float = 0.0) -> list[float]:
    """`expected` for trials on `rows` of the task's `n_train` training rows (the probe moved to them)."""
    return expected(probe.with_labels(rows / n_train), rows, classes, seen, family, shift)


def gain_text(acc: list[float], probe: Probe) -> tuple[float, float, str]:
    """-> (points over TF-IDF + LR, their 80 % half-width, '+X +- Y'); the half-width is the
    forecast's own, which holds the probe's noise on its validation rows (`expected`)."""
    mid = 100 * (acc[1] - probe.accuracy)
    half = 100 * max(acc[1] - acc[0], acc[2] - acc[1])
    return mid, half, f"{mid:+.1f} ± {half:.1f}"


def verdict(acc: list[float], probe: Probe, by_budget: dict) -> str:
    """One plain sentence: does fine-tuning pay at this budget, and what 4x the budget adds."""
    mid, half, text = gain_text(acc, probe)
    pays = "fine-tuning is expected to pay" if mid - half > 0 else "fine-tuning is not shown to pay"
    line = f"expected {text} points over TF-IDF + LR at this budget: {pays}"
    four = by_budget.get("4")
    if four:
        line += f"; 4x the budget: {gain_text(four, probe)[2]}"
    elif "4" in by_budget:
        line += "; 4x the budget: no plan (see by_budget_why)"
    return line


def at_least(acc: list[float], floor: list[float] | None) -> list[float]:
    """More budget or labels never forecast less: the plan they improve on is still open to them."""
    return acc if floor is None else [max(a, f) for a, f in zip(acc, floor)]


def block(p: dict, scan: dict, family: str, replan) -> dict:
    """The plan's `forecast`: its test accuracy, the same at 1/2, 2 and 4x the budget and at 2x
    the labels (each a plan of its own: `replan(budget_s, scan)` -> plan or raises PtftError),
    continued pretraining's expected gain, and the verdict."""
    from ..errors import PtftError

    probe = Probe.of(scan["probe"])
    n, k = scan["examples"]["train"], scan["num_classes"]
    acc = of_plan(p, probe, n, k, family)
    by_budget, why = {}, {}
    for m in (0.5, 2, 4):
        key = f"{m:g}"
        try:
            q = replan(p["budget_s"] * m, scan)
            by_budget[key] = at_least(of_plan(q, probe, n, k, family), acc if m > 1 else None)
        except PtftError as e:
            by_budget[key], why[key] = None, str(e)
    more = {**scan, "examples": {**scan["examples"], "train": 2 * n}}
    try:
        q2 = replan(p["budget_s"], more)
        labels2 = at_least(of_plan(q2, probe.with_labels(2), 2 * n, k, family), acc)
    except PtftError as e:
        labels2, why["labels_2x"] = None, str(e)
    out = {"test_accuracy": acc, "interval": "80 %", "baseline": {"tfidf_lr_val": probe.accuracy,
                                                                   "majority_val": probe.majority},
           "by_budget": by_budget, "labels_2x": labels2,
           "continued_pretraining": continued_pretraining(n, k),
           "verdict": verdict(acc, probe, by_budget),
           "how": f"{FITTED['form']}; fitted on {params(family, probe.embed_gap)['cells']} measured cells "
                  f"({FITTED['source']}); interval: {FITTED['interval']}"}
    if p["shape"].get("finetune.blend") == "auto":
        out["blend"] = ("the export is blended with TF-IDF + LR where that beats the model on validation "
                        "(finetune.blend=auto); the forecast above is the model's alone")
    if why:
        out["by_budget_why"] = why
    return out


def after_continued_pretraining(fc: dict) -> dict:
    """The forecast of a sweep from a model adapted on the task's text: the as-is forecast moved
    by continued pretraining's expected gain, the two errors added in quadrature."""
    lo, mid, hi = fc["test_accuracy"]
    c_lo, c_mid, c_hi = fc["continued_pretraining"]
    half = math.hypot(hi - mid, (c_hi - c_mid) / 100)
    m = mid + c_mid / 100
    return {**fc, "test_accuracy": [round(max(0.0, m - half), 4), round(min(1.0, m), 4), round(min(1.0, m + half), 4)],
            "after": "continued pretraining on the task's text (its expected gain added)"}


def for_sweep(cfg, inputs) -> dict:
    """The forecast of a sweep no plan chose (inputs: its finetune.sweep.SweepInputs): its
    longest configured trial at its smallest batch, no strategy gap (the sweep's own strategies
    are not ranked)."""
    from ..finetune.baseline import probe
    from . import family

    task = inputs.task
    fams = {family(s) for s in inputs.sources}
    fam = "gpt" if fams == {"gpt"} else "hf_encoder"
    n, k = len(task.splits["train"]), len(task.label_names)
    shape = {"epochs": max(cfg.sweep.epochs), "batch_size": min(cfg.sweep.batch_sizes), "shape": {}}
    return {"test_accuracy": of_plan(shape, Probe.of(probe(task)), n, k, fam), "interval": "80 %",
            "continued_pretraining": continued_pretraining(n, k),
            "how": f"from the sweep's config (no plan): its longest trial; {FITTED['form']}"}


def format_block(fc: dict) -> list[str]:
    """The plan printout's forecast lines."""
    lo, mid, hi = fc["test_accuracy"]
    cpt = fc["continued_pretraining"]
    budgets = ", ".join(f"{m}x {v[1]:.3f} ({v[0]:.3f}-{v[2]:.3f})" if v else f"{m}x no plan"
                        for m, v in fc["by_budget"].items())
    lab = fc["labels_2x"]
    return ["forecast (80 % intervals):",
            f"  test accuracy {mid:.3f} ({lo:.3f}-{hi:.3f}); TF-IDF + LR on validation rows "
            f"{fc['baseline']['tfidf_lr_val']:.3f}",
            f"  by budget     {budgets}",
            f"  2x labels     " + (f"{lab[1]:.3f} ({lab[0]:.3f}-{lab[2]:.3f})" if lab else "no plan"),
            f"  continued pretraining on the task text: {cpt[1]:+.1f} points ({cpt[0]:+.1f} to {cpt[2]:+.1f})",
            f"  verdict       {fc['verdict']}"] + ([f"  blend         {fc['blend']}"] if fc.get("blend") else [])
