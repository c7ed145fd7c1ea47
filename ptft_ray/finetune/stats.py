"""How sure a test accuracy is, and whether two models really differ on the same rows.

accuracy_ci: the Wilson score interval (95 %) of k right out of n. With p = k/n, z = 1.96:
    centre = (p + z^2/2n) / (1 + z^2/n),  half = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)
e.g. 0.78 on 1,280 test rows -> [0.756, 0.802]: one reading is worth about +/- 2.3 points.

mcnemar: two models scored on the same test rows. Only the rows they disagree on carry
information: b = rows A got right and B wrong, c = the reverse. Under "no difference" each
such row is a fair coin, so the exact two-sided p-value is
    p = min(1, 2 * P[Binomial(b + c, 1/2) <= min(b, c)])
e.g. b = 40, c = 20 -> p = 0.013; b = 40, c = 35 -> p = 0.64.
"""
from __future__ import annotations

import math
from typing import Sequence

Z95 = 1.959964


def accuracy_ci(correct: int, n: int, z: float = Z95) -> list[float]:
    if n <= 0:
        return [0.0, 1.0]
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)]


def mcnemar(a_right: Sequence[bool], b_right: Sequence[bool]) -> dict:
    """Exact McNemar test of A vs B on the same rows -> counts, the accuracy difference in
    points (A - B) and the two-sided p-value."""
    if len(a_right) != len(b_right) or not len(a_right):
        raise ValueError(f"mcnemar needs the same non-empty rows ({len(a_right)} vs {len(b_right)})")
    b = sum(1 for x, y in zip(a_right, b_right) if x and not y)
    c = sum(1 for x, y in zip(a_right, b_right) if y and not x)
    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n if n else 1.0
    return {"a_only_right": b, "b_only_right": c, "n": len(a_right),
            "points": round(100 * (b - c) / len(a_right), 2), "p_value": min(1.0, 2 * tail)}


def in_words(stage: str, test: dict) -> str:
    """'continued pretraining: +2.1 points, p = 0.03 (a real difference at 5 %)'."""
    p = test["p_value"]
    verdict = "a real difference at 5 %" if p < 0.05 else "within noise: not shown to matter"
    return f"{stage}: {test['points']:+.1f} points, p = {p:.2g} ({verdict})"


def paired(ev_a: dict, ev_b: dict) -> dict:
    """McNemar of two evaluations (evaluate_export outputs) of the same split's rows."""
    if ev_a.get("rows") != ev_b.get("rows") or not ev_a.get("rows"):
        raise ValueError("the two evaluations are not of the same rows: no paired test")
    right = [[p == t for p, t in zip(ev["predictions"], ev["targets"])] for ev in (ev_a, ev_b)]
    return mcnemar(*right)


def run_headline(result: dict, effects: dict | None = None) -> dict:
    """What a report opens with, from a sweep's or fine-tune's result.json: the model, its test
    accuracy and interval, the baselines, and each stage's paired test (`effects`, then the
    run's own test against TF-IDF + LR)."""
    effects = dict(effects or {})
    if result.get("vs_tfidf_lr"):
        effects["vs TF-IDF + LR"] = result["vs_tfidf_lr"]
    return {"model": result["export_path"], "test_accuracy": result["test_accuracy"],
            "test_accuracy_ci": result.get("test_accuracy_ci"), "test_n": result["test_n"],
            "baseline": result.get("baseline"), "gain_points": result.get("gain_points"), "effects": effects}


def noise(accuracy: float, n: int) -> float:
    """One standard error of the difference between two accuracies read on n examples (each
    near `accuracy`, treated as independent): sqrt(2 p (1 - p) / n). What a sweep calls
    validation noise (finetune/stopping.py, select.winner_margin)."""
    return math.sqrt(max(2 * accuracy * (1 - accuracy), 0.0) / max(n, 1))
