"""Rotten Tomatoes at 1,000 labels from a real pretrained model: a planned sweep from MiniLM
as it is, and from MiniLM after task-adaptive continued pretraining (masked LM on the
unlabeled training text), next to TF-IDF + logistic regression on the same split.

    .venv/bin/python -m benchmarks.hf_rt [--budget 10m]
writes benchmarks/results/hf_rt.json. Needs `make data` (data/models/minilm)."""
from __future__ import annotations

import argparse
import json

from .common import ROOT, ptft, save

OUT = ROOT / "runs" / "hf_rt"
DATA = "data/rotten_tomatoes.parquet"
LABELS = 1000


def unlabeled_corpus() -> str:
    """The training split's texts without labels: none of the validation or test rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ptft_ray.config import FinetuneConfig
    from ptft_ray.data.tasks import load_task

    p = OUT / "rt_unlabeled.parquet"
    if not p.is_file():
        task = load_task(FinetuneConfig(data=DATA))
        OUT.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"text": [task.texts[i] for i in sorted(task.splits["train"])]}), p)
    return str(p)


def tfidf_lr() -> dict:
    """TF-IDF (1-2 grams) + logistic regression on exactly the sweep's 1,000 training rows
    (the same fit every sweep's result.json carries as baseline.tfidf_lr)."""
    from ptft_ray.config import FinetuneConfig
    from ptft_ray.data.tasks import load_task
    from ptft_ray.finetune.baseline import baselines

    b = baselines(load_task(FinetuneConfig(data=DATA, max_examples=LABELS)))
    return {**b["tfidf_lr"], "n_train": b["n_train"], "n_test": b["n_test"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", default="10m")
    a = ap.parse_args()
    corpus = unlabeled_corpus()
    pre_dir = OUT / "pretrain"
    if (pre_dir / "result.json").is_file():
        pre = json.loads((pre_dir / "result.json").read_text())
    else:
        pre = ptft("pretrain", "--config", "jobs/configs/pretrain_minilm_rt.yaml", "--set", f"data.path={corpus}",
                   out=pre_dir)
    sweeps = {}
    for name, src in (("minilm", "data/models/minilm"), ("minilm_adapted", pre["checkpoint"])):
        d = OUT / f"sweep_{name}"
        if (d / "result.json").is_file():
            sweeps[name] = json.loads((d / "result.json").read_text())
            continue
        sweeps[name] = ptft("sweep", "--plan", "auto", "--budget", a.budget, "--pretrained", src, "--data", DATA,
                           "--set", f"finetune.max_examples={LABELS}", "--overwrite", out=d)
    base = tfidf_lr()
    rows = {name: {k: s.get(k) for k in ("test_accuracy", "test_macro_f1", "test_n", "best_config", "trials",
                                          "trials_completed", "trials_stopped", "wall_s")}
            for name, s in sweeps.items()}
    save("hf_rt", {"task": f"Rotten Tomatoes, {LABELS} training labels, whole test split", "budget": a.budget,
                   "tfidf_lr": base, "sweeps": rows,
                   "continued_pretraining": {k: pre.get(k) for k in ("steps", "tokens", "tokens_per_s", "val_loss",
                                                                      "val_perplexity", "wall_s", "num_workers")},
                   "points_over_tfidf": {n: round(100 * (r["test_accuracy"] - base["accuracy"]), 1)
                                         for n, r in rows.items()}})


if __name__ == "__main__":
    main()
