"""The models a user would otherwise use, fitted on exactly a run's own training rows and
scored on its own test rows: TF-IDF (1-2 grams) + logistic regression (scikit-learn), and
the majority class. A fine-tuned model that does not beat them is not a result."""
from __future__ import annotations

import numpy as np

from ..data.tasks import TaskData
from .stats import accuracy_ci


def _scores(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict:
    from sklearn.metrics import f1_score

    right = int((pred == y).sum())
    return {"accuracy": right / len(y), "accuracy_ci": accuracy_ci(right, len(y)),
            "macro_f1": float(f1_score(y, pred, labels=list(range(n_classes)), average="macro", zero_division=0))}


# word 1-2 grams, sublinear tf, L2 rows: TF-IDF + LR's features (saved with a blend, finetune/blend.py)
VECTORIZER = {"ngram_range": [1, 2], "sublinear_tf": True}
# weakly regularised: small training sets of short texts underfit at sklearn's default C = 1
C = 10.0


def vectorizer(vocabulary: dict | None = None):
    """TF-IDF + LR's vectorizer; with `vocabulary`, one read back from a blend's file."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=tuple(VECTORIZER["ngram_range"]), sublinear_tf=VECTORIZER["sublinear_tf"],
                           vocabulary=vocabulary)


def logistic_regression():
    """TF-IDF + LR's classifier (the baseline, the planner's probe and the blend): newton-cg at
    tol 1e-6 reaches the regularised optimum, which lbfgs stops short of on TF-IDF features,
    in a fraction of lbfgs's time (docs/decisions.md, "TF-IDF + LR solved by newton-cg")."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, solver="newton-cg", tol=1e-6, max_iter=2000)


def tfidf_lr_predict(train_texts: list[str], train_y: np.ndarray, texts: list[str]) -> np.ndarray:
    """`vectorizer` features, `logistic_regression` on them: the predicted label indices of `texts`."""
    vec = vectorizer()
    clf = logistic_regression().fit(vec.fit_transform(train_texts), train_y)
    return clf.predict(vec.transform(texts))


def baselines(task: TaskData, split: str = "test") -> dict:
    """-> {"tfidf_lr": {...}, "majority": {...}, "n_train", "n_test", "predictions"} where
    predictions holds each baseline's predicted label index per row of the split."""
    tr, te = task.splits["train"], task.splits[split]
    y_tr, y_te = task.labels[tr], task.labels[te]
    n = len(task.label_names)
    tfidf = tfidf_lr_predict([task.texts[i] for i in tr], y_tr, [task.texts[i] for i in te])
    majority = np.full(len(te), np.bincount(y_tr, minlength=n).argmax())
    return {"tfidf_lr": _scores(y_te, tfidf, n), "majority": _scores(y_te, majority, n),
            "n_train": int(len(tr)), "n_test": int(len(te)), "split": split,
            "predictions": {"tfidf_lr": tfidf.tolist(), "majority": majority.tolist()}}


def gains(accuracy: float, base: dict) -> dict:
    """Points of test accuracy over each baseline."""
    return {k: round(100 * (accuracy - base[k]["accuracy"]), 2) for k in ("tfidf_lr", "majority")}


def probe(task: TaskData, max_val: int = 2000, seed: int = 0) -> dict:
    """The planner's task probe (seconds: two TF-IDF + LR fits): TF-IDF + LR on the training rows (and
    on half of them, the same classes kept) scored on up to `max_val` validation rows, and the
    majority class's share there. What the forecast (planner/forecast.py) starts from."""
    rng = np.random.default_rng(seed)
    tr, va = task.splits["train"], task.splits["val"]
    va = va[rng.permutation(len(va))[:max_val]] if len(va) > max_val else va
    y_tr, y_va = task.labels[tr], task.labels[va]
    half = np.sort(rng.permutation(len(tr))[:max(len(tr) // 2, 1)])
    texts_va = [task.texts[i] for i in va]

    def acc(rows) -> float:
        if len(set(y_tr[rows].tolist())) < 2:  # one class: TF-IDF + LR cannot fit; it predicts that class
            return float((y_va == y_tr[rows][0]).mean())
        pred = tfidf_lr_predict([task.texts[i] for i in tr[rows]], y_tr[rows], texts_va)
        return float((pred == y_va).mean())

    majority = np.bincount(y_tr, minlength=len(task.label_names)).argmax()
    return {"tfidf_lr_val": round(acc(np.arange(len(tr))), 4), "tfidf_lr_val_half": round(acc(half), 4),
            "majority_val": round(float((y_va == majority).mean()), 4), "n_val": int(len(va)), "n_train": int(len(tr))}
