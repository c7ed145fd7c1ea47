"""One loaded model that turns texts into class probabilities: what `predict`, `evaluate`,
batch inference (Ray Data actors), serving (Ray Serve replicas) and explanations share."""
from __future__ import annotations

import numpy as np
import torch

from ..data.tasks import encode
from .export import load_finetuned, logits_of


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Our binary models train one logit (for labels[1]); everything else one per class."""
    if logits.ndim == 1:
        p1 = torch.sigmoid(logits.float())
        return torch.stack([1 - p1, p1], dim=-1)
    return torch.softmax(logits.float(), dim=-1)


class Predictor:
    def __init__(self, model_dir: str, device: str = "cpu"):
        self.model, self.tok, self.cfg, self.meta = load_finetuned(model_dir)
        self.device = torch.device(device)
        self.model.to(self.device)
        self.labels: list[str] = self.meta["task_info"]["labels"]
        self.max_len: int = self.cfg.finetune.max_len

    def probs(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """[N, classes] float32. Rows are sorted by length before batching, so each batch is
        padded only to its own longest text (a batch of 64 RT snippets pads ~3x fewer tokens
        than file order would), then put back in input order."""
        if not len(texts):
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        ids, lengths = encode(self.tok, list(texts), self.max_len)
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        ids_t = torch.as_tensor(ids[order]).long().to(self.device)
        logits = logits_of(self.model, ids_t, torch.as_tensor(lengths[order]), batch_size)
        out[order] = probabilities(logits).cpu().numpy()
        return out

    def predict(self, texts: list[str]) -> list[dict]:
        p = self.probs(texts)
        return [{"label": self.labels[int(row.argmax())],
                 "probabilities": {lab: round(float(x), 6) for lab, x in zip(self.labels, row)}} for row in p]
