"""`ptft-ray evaluate` and `ptft-ray predict` on an export, without Ray."""
from __future__ import annotations

import dataclasses

import torch

from ..data.tasks import load_task
from .baseline import baselines, gains
from .blend import attach, load as load_blend
from .export import read_export
from .predictor import Predictor, scorer
from .stats import accuracy_ci, mcnemar
from .task import classification_metrics


def evaluate_export(model_dir: str, data: str, split: str = "test", max_val_examples: int | None = None,
                    with_baselines: bool = False, probs_fn=None) -> dict:
    """Metrics of an export (or a trial's checkpoint) on a split of `data`, with the 95 %
    interval of its accuracy and each row's prediction. max_val_examples: the validation
    subset to use (0 = the whole split); default the model's own setting. with_baselines:
    also fit TF-IDF + LR and the majority class on the model's own training rows, and state
    the gain over each (with McNemar's test against TF-IDF + LR on the same rows).
    probs_fn(texts) -> [N, classes]: how to score the rows with the fine-tuned model alone
    (default: in this process; the CLI's `evaluate --on-ray` passes Ray Data batch inference,
    serve/batch.py); an export's blend with TF-IDF + LR is applied here, on top. Where the rows
    are scored elsewhere, the weights are not loaded here."""
    if probs_fn is None:
        pr = Predictor(model_dir)
        cfg, labels, blend, probs_fn = pr.cfg, pr.labels, pr.blend, pr.model_probs
    else:
        d, cfg, meta = read_export(model_dir)
        labels, blend = meta["task_info"]["labels"], load_blend(d)
    # the export's own split settings, so "test" is the same rows it never trained on and
    # "train" the rows it trained on
    ft = dataclasses.replace(cfg.finetune, data=data)
    if max_val_examples is not None:
        ft = dataclasses.replace(ft, max_val_examples=max_val_examples)
    task = load_task(ft, label_names=labels)
    idx = list(task.splits[split]) if split != "all" else list(range(len(task.texts)))
    texts = [task.texts[i] for i in idx]
    y = torch.as_tensor(task.labels[idx])
    probs, alone = probs_fn(texts), None
    if blend:  # the blended export's figures, and the fine-tuned model's own beside them
        alone = int((torch.as_tensor(probs.argmax(-1)) == y).sum())
        probs = blend.mix(probs, texts)
    pred = torch.as_tensor(probs.argmax(-1))
    n = len(labels)
    conf = torch.bincount(y * n + pred, minlength=n * n).view(n, n).float()
    right = int((pred == y).sum())
    out = {"split": split, "n": len(idx), **classification_metrics(conf, prefix=""),
           "accuracy_ci": accuracy_ci(right, len(idx)), "labels": labels,
           "confusion_matrix": conf.long().tolist(), "model": str(model_dir),
           "rows": [int(i) for i in idx], "targets": y.tolist(), "predictions": pred.tolist()}
    if alone is not None:
        out["blend"] = {"weight": blend.weight, "model_alone_accuracy": alone / max(len(idx), 1)}
    if with_baselines:
        base = baselines(task, split)
        out["baseline"] = {k: base[k] for k in ("tfidf_lr", "majority", "n_train")}
        out["gain_points"] = gains(out["accuracy"], base)
        out["vs_tfidf_lr"] = mcnemar((pred == y).tolist(),
                                     [p == t for p, t in zip(base["predictions"]["tfidf_lr"], y.tolist())])
    return out


def headline(ev: dict) -> dict:
    """The keys of an evaluation a run's result.json carries (contract: baseline.*, test_accuracy_ci)."""
    return {"test_accuracy_ci": ev["accuracy_ci"], "baseline": ev.get("baseline"),
            "gain_points": ev.get("gain_points"), "vs_tfidf_lr": ev.get("vs_tfidf_lr")}


def predict(model_dir: str, texts: list[str]) -> list[dict]:
    return [{"text": t, **row} for t, row in zip(texts, Predictor(model_dir).predict(texts))]


def model_scorer(model_dir: str, gpus: float = 0.0):
    """The fine-tuned model's own probs_fn, loaded once for every pass over an export: in this
    process, or in a Ray task on a GPU where the run trained on one."""
    return scorer(model_dir, gpus) or Predictor(model_dir, blend=False).model_probs


def blend_export(cfg, task, model_dir: str, probs_fn) -> dict | None:
    """finetune.blend=auto: blend.attach on the export's validation probabilities (probs_fn:
    the model's own, model_scorer); what result.json records, else None."""
    if cfg.finetune.blend != "auto":
        return None
    return attach(model_dir, task, probs_fn([task.texts[i] for i in task.splits["val"]]))


def blend_summary(blended: dict | None, test: dict) -> dict:
    """result.json's `blend` (blend_export's record), with the fine-tuned model's own test
    accuracy beside the blend's where the export kept one; {} where blending was off."""
    if not blended:
        return {}
    alone = test.get("blend", {}).get("model_alone_accuracy")
    return {"blend": {**blended, **({"test_accuracy_model_alone": alone} if alone is not None else {})}}
