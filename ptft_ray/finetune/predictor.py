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
    """blend: apply the export's blend with TF-IDF + LR where it has one (finetune/blend.py);
    False gives the fine-tuned model's own probabilities."""

    def __init__(self, model_dir: str, device: str = "cpu", blend: bool = True):
        from .. import storage
        from . import blend as blends

        self.dir = storage.localize(model_dir, "model")  # a URI: fetched once into this node's cache
        self.model, self.tok, self.cfg, self.meta = load_finetuned(self.dir)
        self.blend = blends.load(self.dir) if blend else None
        self.device = torch.device(device)
        self.model.to(self.device)
        self.labels: list[str] = self.meta["task_info"]["labels"]
        self.max_len: int = self.cfg.finetune.max_len

    def probs(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """[N, classes] float32: the model's probabilities, blended where the export blends."""
        p = self.model_probs(texts, batch_size)
        return self.blend.mix(p, list(texts)) if self.blend else p

    def model_probs(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """[N, classes] float32 of the fine-tuned model alone. Rows are sorted by length before batching, so each batch is
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


def on_device(fn, model_dir: str, gpus: float, *args):
    """fn(model_dir, device, *args) here on the CPU, or with gpus > 0 in a Ray task holding that
    many GPUs: the model travels through the object store (ship.py), the result comes back.
    Where a GPU is there, evaluation, re-scoring, explanations use it."""
    if not gpus:
        return fn(model_dir, "cpu", *args)
    import ray

    from ..cluster import cluster_summary, init_ray
    from ..errors import PtftError
    from ..ship import ship

    init_ray()
    have = cluster_summary()["gpus"]
    if have < gpus:  # Ray would wait for it forever
        raise PtftError(f"{gpus:g} GPU asked for scoring {model_dir}, but the cluster has {have:g}")
    return ray.get(ray.remote(num_cpus=1, num_gpus=gpus)(_shipped).remote(fn, ship(model_dir), "cuda", *args))


def _shipped(fn, shipped: list, device: str, *args):
    import shutil

    from ..ship import unship

    d = unship(shipped)
    try:
        return fn(d, device, *args)
    finally:
        if not isinstance(shipped[0], str):  # the copy this task rebuilt from the object store
            shutil.rmtree(d, ignore_errors=True)


def _probs(model_dir: str, device: str, texts: list[str]) -> np.ndarray:
    return Predictor(model_dir, device, blend=False).model_probs(texts)


def scorer(model_dir: str, gpus: float = 0.0):
    """A probs_fn for evaluate_export (the fine-tuned model's own probabilities; evaluate_export
    applies an export's blend): None (score in this process) without GPUs, else one that
    scores in a Ray task on a GPU."""
    if not gpus:
        return None
    return lambda texts: on_device(_probs, model_dir, gpus, list(texts))
