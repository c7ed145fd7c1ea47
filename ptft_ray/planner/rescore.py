"""How many validation rows the top trials are re-scored on after the sweep (finetune/select.py
applies the same rule), priced from the calibrated evaluation cost."""
from __future__ import annotations

from ..finetune.select import rescore_size
from .families import CALIBRATED

# the budget's share kept to re-score the top trials on more validation rows (finetune/select.py), how many
RESCORE_SHARE, RESCORE_TOP_K = 0.15, 3


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
