"""The classification task the loop fine-tunes on: any backbone (ours or Hugging Face),
each batch padded to its longest example, the strategy choosing what trains.

It reaches the loop (train/loop.py) as the RunSpec's ClsSpec (finetune/backbones.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..models import build_classifier
from ..train.param_groups import ParamGroups
from .strategies import STRATEGIES


class ClsTask:
    """Our own models: binary is one logit with BCE-with-logits (the seed design), more
    classes cross-entropy. Hugging Face models: always one logit per class (cross-entropy),
    as their sequence-classification head and `pipeline` expect."""

    name = "cls"
    unit = "examples"

    def __init__(self, spec, info: "ClsSpec"):
        cfg = spec.config
        self.labels = list(info.labels)
        self.n = len(self.labels)
        self.binary = self.n == 2 and not cfg.model.hf
        self.pad_id = info.pad_id
        # cfg.model is the source's own model section (finetune/backbones.py)
        self.model = build_classifier(cfg.model, self.labels, info.vocab_size, self.pad_id,
                                      cfg.finetune.head_dropout, spec.init_from)

    def _forward(self, model, batch):
        ids, mask = trim(batch["input_ids"].long(), batch["length"])
        logits = model(ids, mask)
        y = batch["label"].long()
        if self.binary:
            loss = F.binary_cross_entropy_with_logits(logits.float(), y.float(), reduction="sum")
            pred = (logits > 0).long()
        else:
            loss = F.cross_entropy(logits.float(), y, reduction="sum")
            pred = logits.argmax(-1)
        return loss, y, pred

    def loss(self, model, batch):
        loss, y, _ = self._forward(model, batch)
        return loss, torch.tensor(y.numel(), device=y.device)

    def eval_stats(self, model, batch) -> torch.Tensor:
        loss, y, pred = self._forward(model, batch)
        conf = torch.bincount(y * self.n + pred, minlength=self.n * self.n).float()
        return torch.cat([torch.stack([loss.detach().float(), torch.tensor(float(y.numel()), device=y.device)]), conf])

    def metrics(self, s: torch.Tensor) -> dict:
        conf = s[2:].view(self.n, self.n)               # rows: true label, cols: predicted
        return {"val_loss": (s[0] / s[1].clamp_min(1)).item(), **classification_metrics(conf)}

    def groups(self, spec) -> ParamGroups:
        """The strategy sets requires_grad and returns the parameter groups and their LRs."""
        cfg = spec.config
        return STRATEGIES[cfg.finetune.strategy](self.model, cfg.finetune, cfg.optim.lr, spec.steps.steps_per_epoch)


@dataclass(frozen=True)
class ClsSpec:
    """Text classification: the labels, the tokenizer's ids, what the training split holds."""
    labels: tuple[str, ...]
    task_type: str
    vocab_size: int
    pad_id: int
    eot_id: int | None = None
    train_examples: int = 0
    class_balance: dict = field(default_factory=dict)

    def build(self, spec) -> ClsTask:
        return ClsTask(spec, self)

    def meta(self) -> dict:
        return {"vocab_size": self.vocab_size, "pad_id": self.pad_id, "eot_id": self.eot_id, "objective": None,
                "task_info": {"labels": list(self.labels), "task_type": self.task_type,
                              "vocab_size": self.vocab_size, "pad_id": self.pad_id,
                              "train_examples": self.train_examples, "class_balance": self.class_balance}}


def classification_metrics(conf: torch.Tensor, prefix: str = "val_") -> dict:
    tp = conf.diag()
    fp, fn = conf.sum(0) - tp, conf.sum(1) - tp
    f1 = torch.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn).clamp_min(1e-9), torch.zeros_like(tp))
    return {f"{prefix}accuracy": (tp.sum() / conf.sum().clamp_min(1)).item(),
            f"{prefix}macro_f1": f1.mean().item()}


def trim(ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic padding: rows are stored right-padded to max_len; cut the batch to its longest
    example and mark the real tokens. (RT snippets average ~28 tokens: a max_len of 64 would
    compute over twice the tokens.)"""
    lengths = lengths.to(ids.device).long()
    longest = int(lengths.max().clamp_min(1))
    ids = ids[:, :longest]
    mask = torch.arange(longest, device=ids.device)[None, :] < lengths[:, None]
    return ids, mask
