"""What differs between pretraining and fine-tuning: the model, the loss and the metrics.

The loop (loop.py) is the same for both. A task gives it:
    model                       an nn.Module (not yet wrapped for DDP)
    loss(model, batch)          -> (sum of per-item losses, number of items)
    eval_stats(model, batch)    -> a 1-D float tensor that is summed over batches and workers
    metrics(stats)              -> {"val_...": ...} from the summed stats
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import Config
from ..errors import PtftError
from ..models import Classifier, LanguageModel, build_backbone, build_lm
from . import checkpoint as ckpt

IGNORE = -100


class LMTask:
    name = "lm"
    unit = "tokens"

    def __init__(self, cfg: Config, vocab_size: int, pad_id: int):
        self.pad_id = pad_id
        self.model: LanguageModel = build_lm(cfg.model, vocab_size)

    def loss(self, model, batch):
        x = batch["tokens"].long()
        inp, tgt = x[:, :-1], x[:, 1:].clone()      # predict token t+1 from tokens <= t
        tgt[tgt == self.pad_id] = IGNORE              # the padded tail of a packed block
        logits = model(inp)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tgt.flatten(),
                               ignore_index=IGNORE, reduction="sum")
        return loss, (tgt != IGNORE).sum()

    def eval_stats(self, model, batch) -> torch.Tensor:
        loss, n = self.loss(model, batch)
        return torch.stack([loss.detach().float(), n.float()])

    def metrics(self, s: torch.Tensor) -> dict:
        val_loss = (s[0] / s[1].clamp_min(1)).item()
        return {"val_loss": val_loss, "val_perplexity": math.exp(min(val_loss, 50.0))}


class ClsTask:
    """Binary (one logit, BCE-with-logits, as in the seed design) or multi-class (CE)."""

    name = "cls"
    unit = "examples"

    def __init__(self, cfg: Config, info: dict, init_from: str | None):
        self.labels = info["labels"]
        self.n = len(self.labels)
        self.binary = self.n == 2
        self.pad_id = info["pad_id"]
        if init_from:  # cfg.model is the checkpoint's own model section (finetune/runner.py)
            lm = build_lm(cfg.model, info["vocab_size"])
            ckpt.load_weights(lm, init_from)
            backbone = lm.backbone
        else:
            backbone = build_backbone(cfg.model, info["vocab_size"])
        self.model = Classifier(backbone, 1 if self.binary else self.n, self.pad_id,
                                cfg.finetune.head_dropout)

    def _forward(self, model, batch):
        logits = model(batch["input_ids"].long())
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


def classification_metrics(conf: torch.Tensor, prefix: str = "val_") -> dict:
    tp = conf.diag()
    fp, fn = conf.sum(0) - tp, conf.sum(1) - tp
    f1 = torch.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn).clamp_min(1e-9), torch.zeros_like(tp))
    return {f"{prefix}accuracy": (tp.sum() / conf.sum().clamp_min(1)).item(),
            f"{prefix}macro_f1": f1.mean().item()}


def build_task(cfg: Config, lc: dict):
    if lc["task"] == "lm":
        return LMTask(cfg, lc["vocab_size"], lc["pad_id"])
    if lc["task"] == "cls":
        return ClsTask(cfg, lc["task_info"], lc.get("init_from"))
    raise PtftError(f"unknown task {lc['task']!r}")
