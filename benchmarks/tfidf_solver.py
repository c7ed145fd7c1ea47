"""TF-IDF + LR's solver: newton-cg at tol 1e-6 (what `finetune/baseline.logistic_regression`
uses) against scikit-learn's default lbfgs (tol 1e-4), both at C = 10 and max_iter 2,000, on the
offline tasks.

    python -m benchmarks.tfidf_solver      # -> benchmarks/results/tfidf_solver.json (~5 min)

Per cell: seconds of the fit, how far each stops above the regularised optimum (the objective,
C x summed log-loss + |w|^2 / 2, over a newton-cg solve at tol 1e-10), test accuracy, and the
share of test rows each predicts as the optimum does. Then the planner's probe (TF-IDF + LR on
validation rows) on every cell the forecast is fitted on, read with newton-cg, against the
lbfgs values the fit holds (results/forecast_val_probes.json).
"""
from __future__ import annotations

import json
import time
import warnings

import numpy as np

from benchmarks.common import RESULTS, save
from ptft_ray.finetune.baseline import C, vectorizer

CELLS = [("news", "data/news_sources.parquet", 250), ("news", "data/news_sources.parquet", 1000),
         ("news", "data/news_sources.parquet", 0), ("tweets", "data/health_tweets.parquet", 3000),
         ("tweets", "data/health_tweets.parquet", 0), ("rt", "data/rotten_tomatoes.parquet", 1000),
         ("rt", "data/rotten_tomatoes.parquet", 0), ("commons", "data/commons_party.parquet", 400),
         ("commons", "data/commons_party.parquet", 0), ("bundestag", "data/bundestag_party.parquet", 0),
         ("topics", "data/news_topics.parquet", 0), ("debates", "data/debate_party.parquet", 0)]
SOLVERS = {"lbfgs": {"solver": "lbfgs"}, "newton-cg": {"solver": "newton-cg", "tol": 1e-6},
           "optimum": {"solver": "newton-cg", "tol": 1e-10, "max_iter": 10_000}}


def objective(clf, x, y) -> float:
    from sklearn.metrics import log_loss

    return C * log_loss(y, clf.predict_proba(x), labels=clf.classes_, normalize=False) + 0.5 * float((clf.coef_ ** 2).sum())


def cell(task: str, data: str, n: int) -> dict:
    from sklearn.linear_model import LogisticRegression

    from ptft_ray.config import FinetuneConfig
    from ptft_ray.data.tasks import load_task

    t = load_task(FinetuneConfig(data=data, max_examples=n))
    tr, te = t.splits["train"], t.splits["test"]
    vec = vectorizer()
    x, x_te = vec.fit_transform([t.texts[i] for i in tr]), vec.transform([t.texts[i] for i in te])
    y, y_te = t.labels[tr], t.labels[te]
    fits = {}
    for name, kw in SOLVERS.items():
        kw = {"max_iter": 2000, **kw}
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs's ConvergenceWarning: its excess below says it
            clf = LogisticRegression(C=C, **kw).fit(x, y)
        fits[name] = (time.perf_counter() - t0, objective(clf, x, y), clf.predict(x_te))
    best = fits["optimum"]
    row = {"cell": f"{task}:{n or 'all'}", "n_train": int(len(tr)), "classes": len(t.label_names), "n_test": int(len(te))}
    for name in ("lbfgs", "newton-cg"):
        s, obj, pred = fits[name]
        row[name] = {"seconds": round(s, 2), "objective_excess": round(obj - best[1], 4),
                     "test_accuracy": round(float((pred == y_te).mean()), 4),
                     "agrees_with_optimum": round(float((pred == best[2]).mean()), 4)}
    row["optimum_test_accuracy"] = round(float((best[2] == y_te).mean()), 4)
    print(row, flush=True)
    return row


def probe_shift() -> dict:
    """The planner's probe with newton-cg on the forecast's fit cells vs the cached lbfgs probe."""
    from benchmarks.embed_probe import cell_task
    from benchmarks.forecast import quality_cells, run_cells
    from ptft_ray.finetune.baseline import probe

    cached = json.loads((RESULTS / "forecast_val_probes.json").read_text())
    diffs = []
    for r in quality_cells("minilm") + run_cells():
        if r["cell"] in cached:
            diffs.append(100 * (probe(cell_task(r))["tfidf_lr_val"] - cached[r["cell"]]["tfidf_lr_val"]))
    a = np.abs(diffs)
    return {"cells": len(diffs), "mean_abs_points": round(float(a.mean()), 2), "max_abs_points": round(float(a.max()), 2),
            "mean_signed_points": round(float(np.mean(diffs)), 2)}


def section(r: dict | None) -> list[str]:
    """BENCHMARKS.md's table."""
    if not r:
        return []
    L = ["", "## TF-IDF + LR's solver", "", f"Command: `{r['command']}`. C = 10, max_iter 2,000, the same TF-IDF "
         "features; lbfgs at scikit-learn's default tol 1e-4 (the baseline until 2026-12-06), newton-cg at tol 1e-6 "
         "(the baseline since); excess: how far the fit's objective stops above the regularised optimum (a newton-cg solve at "
         "tol 1e-10); agrees: the share of test rows it predicts as the optimum does.", "",
         "| cell | train rows | classes | lbfgs s | newton-cg s | lbfgs excess | newton-cg excess | lbfgs test acc | "
         "newton-cg test acc | optimum's | lbfgs agrees | newton-cg agrees |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in r["cells"]:
        lb, nc = c["lbfgs"], c["newton-cg"]
        L.append(f"| {c['cell']} | {c['n_train']} | {c['classes']} | {lb['seconds']} | {nc['seconds']} | "
                 f"{lb['objective_excess']:.3f} | {nc['objective_excess']:.3f} | {lb['test_accuracy']:.4f} | "
                 f"{nc['test_accuracy']:.4f} | {c['optimum_test_accuracy']:.4f} | {lb['agrees_with_optimum']:.4f} | "
                 f"{nc['agrees_with_optimum']:.4f} |")
    p = r.get("probe_shift")
    if p:
        L += ["", f"The planner's probe on the forecast's {p['cells']} fit cells, newton-cg against the lbfgs values "
              f"the fit holds: {p['mean_abs_points']} points apart on average (at most {p['max_abs_points']}, "
              f"mean signed {p['mean_signed_points']:+})."]
    return L


def main() -> None:
    save("tfidf_solver", {"cells": [cell(*c) for c in CELLS], "probe_shift": probe_shift()})


if __name__ == "__main__":
    main()
