"""Trial shape from the data alone: batch size, epochs, evaluations, sequence length.

These rules are arithmetic, not tuned: a trial needs enough optimizer steps to move
(MIN_STEPS), enough evaluations for ASHA to compare trials (EVALS_PER_TRIAL), and a
sequence length that holds nearly every example without padding the rest to the model's
maximum. The calibration (benchmarks/calibrate.py) runs with exactly these shapes.
"""
from __future__ import annotations

import math

MIN_STEPS = {"short": 100, "long": 300}  # optimizer steps per trial at each budget level
EVALS_PER_TRIAL = 6                       # validation passes per trial (ASHA's rungs live on these)
VAL_CAP = (250, 1000)                     # validation examples per evaluation: n_train within these


def batch_size_for(n_train: int) -> int:
    # small data: small batches, or 100 examples would be 3 steps an epoch
    return 32 if n_train >= 2000 else 16 if n_train >= 300 else 8


def min_steps(level: str, classes: int = 2) -> int:
    # a K-way head has K directions to separate, not one: the minimum grows with log2(K)
    # (binary 1x, 4 classes 2x, 16 classes 4x; docs/decisions.md, "Steps grow with the classes")
    return int(round(MIN_STEPS[level] * max(1.0, math.log2(max(2, classes)))))


def epochs_for(n_train: int, batch: int, level: str = "short", max_epochs: int = 20, classes: int = 2) -> int:
    # epochs = ceil(min_steps / steps_per_epoch): 100 examples / 8 = 12 steps -> 9 epochs;
    # 10,000 / 32 = 312 steps -> 1 epoch; 1,000 examples of 16 classes / 16 = 62 steps -> 400 / 62 -> 7 epochs
    steps_per_epoch = max(1, n_train // batch)
    return int(min(max_epochs, max(1, math.ceil(min_steps(level, classes) / steps_per_epoch))))


def evals_per_epoch_for(epochs: float, per_trial: int = EVALS_PER_TRIAL) -> int:
    return max(1, math.ceil(per_trial / epochs))


def max_len_for(p95: float, model_max: int) -> int:
    # round the 95th percentile up to a multiple of 8 (>= 16), never over the model's positions
    return int(min(model_max, max(16, 8 * math.ceil(p95 / 8))))


def shape_overrides(n_train: int, p95: float, model_max: int, level: str = "short", classes: int = 2) -> dict:
    bs = batch_size_for(n_train)
    ep = epochs_for(n_train, bs, level, classes=classes)
    return {"sweep.batch_sizes": [bs], "sweep.epochs": [float(ep)],
            "finetune.evals_per_epoch": evals_per_epoch_for(ep),
            "finetune.max_len": max_len_for(p95, model_max),
            "finetune.max_val_examples": val_examples_for(n_train)}


def val_examples_for(n_train: int) -> int:
    # a validation set much larger than the training set costs more than the training and buys
    # little (the test split stays whole)
    return int(min(VAL_CAP[1], max(VAL_CAP[0], n_train)))
