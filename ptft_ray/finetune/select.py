"""Which trial the sweep exports: the best by the metric, re-scored where that metric was noisy.

A trial's `best_metric` is the best of its several evaluations on the validation subset the
sweep evaluates on (finetune.max_val_examples keeps evaluations cheap). Taking the best over
trials x evaluations favours a lucky evaluation: with 1,000 validation examples one accuracy
reading has a standard error of sqrt(0.6 * 0.4 / 1000) = 1.5 points, and the largest of ~100
such readings sits ~2.5 standard errors above its model's accuracy. So the top k trials'
best checkpoints are evaluated again on a larger validation set (sweep.rescore_val_examples,
0 = the whole split) and the best of those wins; the test split is never looked at.
"""
from __future__ import annotations

from .evaluate import evaluate_export
from .predictor import scorer

RESCORABLE = ("val_accuracy", "val_macro_f1")  # what classification_metrics computes


def rescore_size(n_sweep_val: int, n_val_split: int, cap: int) -> int:
    """Examples a re-score would use; 0 where it would not be larger than the sweep's own."""
    n = n_val_split if cap <= 0 else min(cap, n_val_split)
    return n if n > n_sweep_val else 0


def select_best(ok: list[dict], metric: str, mode: str, data: str, top_k: int, n_sweep_val: int,
                n_val_split: int, cap: int, gpus: float = 0.0) -> tuple[dict, dict]:
    """-> (the chosen row, how it was chosen: by what, what was re-scored, and whether the
    winner beats the runner-up beyond noise). ok: trials.csv rows with a checkpoint. gpus: the
    re-scoring runs on a GPU (where the trials did)."""
    ranked = sorted(ok, key=lambda r: r["best_metric"], reverse=mode == "max")
    i, how = _choose(ranked, metric, mode, data, top_k, n_sweep_val, n_val_split, cap, gpus)
    how["winner_vs_runner_up"] = winner_margin(ranked, how, mode)
    return ranked[i], how


def _choose(ranked: list[dict], metric: str, mode: str, data: str, top_k: int, n_sweep_val: int,
            n_val_split: int, cap: int, gpus: float) -> tuple[int, dict]:
    """-> (the index of the chosen row in `ranked`, how): the sweep's best, or the best of its
    top_k re-scored on a larger validation set."""
    n = rescore_size(n_sweep_val, n_val_split, cap)
    how = {"by": metric, "n_val": n_sweep_val, "rescored": []}
    if top_k < 2 or len(ranked) < 2 or metric not in RESCORABLE or mode != "max" or not n:
        return 0, how
    key = metric.removeprefix("val_")
    for r in ranked[:top_k]:
        ev = evaluate_export(r["best_checkpoint"], data, "val", max_val_examples=0 if n == n_val_split else n,
                             probs_fn=scorer(r["best_checkpoint"], gpus))
        how["rescored"].append({"trial_id": r["trial_id"], "strategy": r.get("strategy"), "lr": r.get("lr"),
                                "sweep_metric": r["best_metric"], "rescored": ev[key], "n": ev["n"]})
    # ties keep the sweep's order (max returns the first)
    i = max(range(len(how["rescored"])), key=lambda j: how["rescored"][j]["rescored"])
    how.update(by=f"{metric} re-scored on {n} validation examples (top {len(how['rescored'])})", n_rescore=n)
    return i, how


def winner_margin(ranked: list[dict], how: dict, mode: str) -> dict | None:
    """Does the winner beat the runner-up beyond validation noise? Read on the re-scored set
    where there was one, else on the sweep's own validation examples; noise is one standard
    error of the difference of two accuracies on n examples, sqrt(2 b (1 - b) / n)."""
    from .stats import noise

    if "accuracy" not in how["by"]:
        return None
    if how["rescored"] and len(how["rescored"]) >= 2:
        # stable: a tie keeps the sweep's order, as the choice does
        pts = [(r["rescored"], r["trial_id"]) for r in sorted(how["rescored"], key=lambda r: r["rescored"], reverse=True)]
        n = how["n_rescore"]
    elif len(ranked) >= 2 and mode == "max":
        pts, n = [(r["best_metric"], r["trial_id"]) for r in ranked[:2]], how["n_val"]
    else:
        return None
    (b, win), (r, up) = pts[0], pts[1]
    sd = noise(b, n)
    return {"winner": win, "runner_up": up, "gap": round(b - r, 4), "noise": round(sd, 4), "n": n,
            "beyond_noise": b - r > sd}
