"""A fine-tuned model blended with TF-IDF + LR, where that beats the model on validation.

A model trained on a budget too small for it can fall under TF-IDF + LR, and still hold what
TF-IDF cannot: averaging the two's class probabilities, p = w p_model + (1 - w) p_tfidf,
beat both on held-out test rows where each alone fell short (docs/decisions.md, "Blend with
TF-IDF + LR"). `finetune.blend: auto` fits TF-IDF + LR on the run's training rows, picks w on
the validation rows the sweep evaluated on, and keeps the blend only if it beats w = 1 there.

The blend is two files in the export: blend.json (w, the vectorizer's settings and
vocabulary, the validation figures) and blend.safetensors (idf, coefficients, intercepts).
Nothing is unpickled: a model directory from elsewhere runs no code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .baseline import VECTORIZER, logistic_regression, vectorizer

JSON, TENSORS = "blend.json", "blend.safetensors"
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))  # w over the model; 1.0 = the model alone


@dataclass
class TfidfLR:
    """TF-IDF (1-2 grams) + logistic regression as arrays: probabilities without sklearn's pickles."""
    vocabulary: dict[str, int]
    idf: np.ndarray
    coef: np.ndarray        # [classes seen, features], or [1, features] where two were seen
    intercept: np.ndarray
    classes: np.ndarray     # the label indices the fit saw
    n_labels: int

    @classmethod
    def fit(cls, texts: list[str], y: np.ndarray, n_labels: int) -> "TfidfLR":
        vec = vectorizer()
        x = vec.fit_transform(texts)
        seen = np.unique(y)
        if len(seen) < 2:  # one class: nothing to regress; it predicts that class
            return cls({k: int(v) for k, v in vec.vocabulary_.items()}, vec.idf_, np.zeros((0, x.shape[1])),
                       np.zeros(0), seen, n_labels)
        lr = logistic_regression().fit(x, y)
        return cls({k: int(v) for k, v in vec.vocabulary_.items()}, vec.idf_, lr.coef_, lr.intercept_,
                   lr.classes_, n_labels)

    def features(self, texts: list[str]):
        vec = vectorizer(self.vocabulary)
        vec.idf_ = self.idf
        return vec.transform(texts)

    def check(self) -> str | None:
        """What is inconsistent in arrays read from a file, or None."""
        k, f = len(self.classes), len(self.idf)
        if len(self.vocabulary) != f or any(not 0 <= i < f for i in self.vocabulary.values()):
            return f"vocabulary of {len(self.vocabulary)} does not index {f} idf weights"
        if any(not 0 <= c < self.n_labels for c in self.classes.tolist()):
            return f"classes {self.classes.tolist()} outside {self.n_labels} labels"
        rows = 0 if k < 2 else 1 if k == 2 else k
        if self.coef.shape != (rows, f) or self.intercept.shape != (rows,):
            return f"coefficients {self.coef.shape} / intercepts {self.intercept.shape} for {k} classes, {f} features"
        return None

    def probs(self, texts: list[str]) -> np.ndarray:
        """[N, n_labels]: logistic regression's own probabilities; labels it never saw get 0."""
        out = np.zeros((len(texts), self.n_labels), dtype=np.float32)
        if len(self.classes) < 2:
            out[:, self.classes] = 1.0
            return out
        z = np.asarray(self.features(texts) @ self.coef.T) + self.intercept
        if z.shape[1] == 1:  # two classes: one logit for the second
            p1 = 1 / (1 + np.exp(-z[:, 0]))
            p = np.stack([1 - p1, p1], axis=1)
        else:
            z = z - z.max(axis=1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        out[:, self.classes] = p
        return out


@dataclass
class Blend:
    weight: float           # w of the model's probabilities
    base: TfidfLR
    record: dict            # what blend.json shows beside: the validation figures

    def mix(self, p_model: np.ndarray, texts: list[str]) -> np.ndarray:
        return (self.weight * p_model + (1 - self.weight) * self.base.probs(texts)).astype(np.float32)

    def save(self, d: str | Path) -> None:
        from safetensors.numpy import save_file

        d = Path(d)
        arrays = {"idf": self.base.idf, "coef": self.base.coef, "intercept": self.base.intercept}
        # C order: scikit-learn's coefficients can be Fortran-ordered, and the file holds raw bytes
        save_file({**{k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()},
                   "classes": np.ascontiguousarray(self.base.classes, dtype=np.int64)}, str(d / TENSORS))
        (d / JSON).write_text(json.dumps({"weight": self.weight, "n_labels": self.base.n_labels,
                                          "vectorizer": VECTORIZER, **self.record,
                                          "vocabulary": self.base.vocabulary}))


def _info(d: Path) -> dict | None:
    """blend.json with its weight and vectorizer checked; None where the export has no blend."""
    from ..errors import PtftError

    f = d / JSON
    if not f.is_file():
        return None
    try:
        info = json.loads(f.read_text())
        w = float(info["weight"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PtftError(f"{f}: unreadable blend ({str(e).splitlines()[0][:200]})") from None
    if not 0.0 <= w <= 1.0 or info.get("vectorizer") != VECTORIZER:
        raise PtftError(f"{f}: weight {w} or vectorizer {info.get('vectorizer')} is not one this version reads")
    return {**info, "weight": w}


def weight_of(d: str | Path) -> float | None:
    """The export's blend weight (None: no blend), for a reader that does not apply the blend
    and so need not load its arrays; checked as load checks it."""
    info = _info(Path(d))
    return None if info is None else info["weight"]


def load(d: str | Path) -> Blend | None:
    """The export's blend, or None where it has none."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from ..errors import PtftError

    d = Path(d)
    info = _info(d)
    if info is None:
        return None
    try:
        t = load_file(str(d / TENSORS))
        base = TfidfLR({str(k): int(v) for k, v in info["vocabulary"].items()}, t["idf"], t["coef"], t["intercept"],
                       t["classes"], int(info["n_labels"]))
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
        raise PtftError(f"{d / JSON}: unreadable blend ({str(e).splitlines()[0][:200]})") from None
    if base.check():
        raise PtftError(f"{d / TENSORS}: {base.check()}")
    return Blend(info["weight"], base, {k: v for k, v in info.items() if k not in ("vocabulary", "weight")})


def choose(p_model: np.ndarray, p_base: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    """-> (w, the validation accuracy at each w): the best w on validation; ties go to the
    larger w (more of the model), and w = 1 (no blend) unless a blend beats it."""
    acc = {w: float(((w * p_model + (1 - w) * p_base).argmax(1) == y).mean()) for w in WEIGHTS}
    best = max(WEIGHTS, key=lambda w: (acc[w], w))
    return best, acc


def attach(model_dir: str, task, p_val_model: np.ndarray) -> dict:
    """Fit TF-IDF + LR on the task's training rows, choose w on its validation rows (the
    model's probabilities there: p_val_model), and write the blend into the export where it
    beats the model alone. -> what result.json records."""
    tr, va = task.splits["train"], task.splits["val"]
    base = TfidfLR.fit([task.texts[i] for i in tr], task.labels[tr], len(task.label_names))
    p_base = base.probs([task.texts[i] for i in va])
    w, acc = choose(p_val_model, p_base, task.labels[va])
    record = {"val_n": int(len(va)), "val_accuracy_model": round(acc[1.0], 4),
              "val_accuracy_tfidf_lr": round(acc[0.0], 4), "val_accuracy_blend": round(acc[w], 4)}
    if w < 1.0:
        Blend(w, base, record).save(model_dir)
    return {"weight": w, "kept": w < 1.0, **record}

