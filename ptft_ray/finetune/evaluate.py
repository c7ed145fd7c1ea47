"""`ptft-ray evaluate` and `ptft-ray predict` on an export, without Ray."""
from __future__ import annotations

import dataclasses

import torch

from ..data.tasks import load_task
from .task import classification_metrics
from .export import load_finetuned, logits_of_texts


def _probs(logits: torch.Tensor) -> torch.Tensor:
    if logits.ndim == 1:  # binary: one logit for labels[1]
        p1 = torch.sigmoid(logits)
        return torch.stack([1 - p1, p1], dim=-1)
    return torch.softmax(logits, dim=-1)


def evaluate_export(model_dir: str, data: str, split: str = "test", max_val_examples: int | None = None) -> dict:
    """Metrics of an export (or a trial's checkpoint) on a split of `data`. max_val_examples:
    the validation subset to use (0 = the whole split); default the model's own setting."""
    model, tok, cfg, meta = load_finetuned(model_dir)
    labels = meta["task_info"]["labels"]
    # the export's own split settings, so "test" is the same rows it never trained on
    ft = dataclasses.replace(cfg.finetune, data=data, max_examples=0)
    if max_val_examples is not None:
        ft = dataclasses.replace(ft, max_val_examples=max_val_examples)
    task = load_task(ft, label_names=labels)
    idx = task.splits[split] if split != "all" else range(len(task.texts))
    idx = list(idx)
    pred = _probs(logits_of_texts(model, tok, [task.texts[i] for i in idx], ft.max_len)).argmax(-1)
    y = torch.as_tensor(task.labels[idx])
    n = len(labels)
    conf = torch.bincount(y * n + pred, minlength=n * n).view(n, n).float()
    return {"split": split, "n": len(idx), **classification_metrics(conf, prefix=""),
            "labels": labels, "confusion_matrix": conf.long().tolist(), "model": str(model_dir)}


def predict(model_dir: str, texts: list[str]) -> list[dict]:
    model, tok, cfg, meta = load_finetuned(model_dir)
    labels = meta["task_info"]["labels"]
    probs = _probs(logits_of_texts(model, tok, texts, cfg.finetune.max_len))
    return [{"text": t, "label": labels[int(p.argmax())],
             "probabilities": {lab: round(float(x), 6) for lab, x in zip(labels, p)}}
            for t, p in zip(texts, probs)]


