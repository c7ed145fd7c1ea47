"""What the pretrained encoder knows of a task before any training: logistic regression on its
frozen, mean-pooled embeddings of a few hundred training rows, scored on validation rows,
against TF-IDF + LR on the same rows. Tried as a forecast feature (benchmarks/forecast.py,
gap_check): where the frozen encoder is ahead of TF-IDF, fine-tuning might go further ahead.
It did not lower the held-out error, so the planner does not pay its seconds
(docs/decisions.md, "The forecast, refitted").

    python -m benchmarks.forecast   # gap_check: results/forecast.json, frozen_encoder_gap
"""
from __future__ import annotations

import time

import numpy as np

ROWS = 512       # training rows and validation rows each: enough that the gap's noise is ~2 points
MAX_LEN = 128    # tokens a row: the gap moves little past it, the cost grows with it


def _sample(rows: np.ndarray, k: int, rng) -> np.ndarray:
    return rows if len(rows) <= k else np.sort(rng.choice(rows, size=k, replace=False))


def _embed(model, tok, texts: list[str], max_len: int, batch: int = 64) -> np.ndarray:
    """Mean of the last hidden states over each row's own tokens (padding left out)."""
    import torch

    ids = tok.encode_examples(texts, max_len)
    order = np.argsort([len(x) for x in ids])        # like lengths together: less padding
    out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for i in range(0, len(ids), batch):
            take = order[i:i + batch]
            width = max(len(ids[j]) for j in take)
            x = torch.full((len(take), width), tok.pad_id, dtype=torch.long)
            mask = torch.zeros((len(take), width), dtype=torch.long)
            for r, j in enumerate(take):
                x[r, :len(ids[j])], mask[r, :len(ids[j])] = torch.tensor(ids[j]), 1
            h = model(input_ids=x, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            out[take] = ((h * m).sum(1) / m.sum(1)).numpy()
    return out


def embedding_probe(task, model_dir: str, tokenizer_json: str, max_len: int = MAX_LEN,
                    rows: int = ROWS, seed: int = 0) -> dict:
    """-> {"embed_lr_val", "tfidf_lr_val" (the same rows), "gap" (error reduction of the first
    over the second: (e - t) / (1 - t)), "rows", "max_len", "seconds"}."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModel

    from ptft_ray import tokenizer as toks
    from ptft_ray.finetune.baseline import tfidf_lr_predict
    from ptft_ray.models.hf import quiet_torchao

    t0 = time.time()
    rng = np.random.default_rng(seed)
    tr, va = _sample(task.splits["train"], rows, rng), _sample(task.splits["val"], rows, rng)
    y_tr, y_va = task.labels[tr], task.labels[va]
    x_tr, x_va = [task.texts[i] for i in tr], [task.texts[i] for i in va]
    tfidf = float((tfidf_lr_predict(x_tr, y_tr, x_va) == y_va).mean()) if len(set(y_tr.tolist())) > 1 else 0.0
    quiet_torchao()
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = toks.from_json(tokenizer_json)
    length = min(max_len, MAX_LEN)
    e_tr, e_va = _embed(model, tok, x_tr, length), _embed(model, tok, x_va, length)
    embed = float((LogisticRegression(C=1.0, max_iter=2000).fit(e_tr, y_tr).predict(e_va) == y_va).mean()) \
        if len(set(y_tr.tolist())) > 1 else tfidf
    return {"embed_lr_val": round(embed, 4), "tfidf_lr_val": round(tfidf, 4),
            "gap": round((embed - tfidf) / max(1e-6, 1 - tfidf), 4), "rows": [len(tr), len(va)],
            "max_len": length, "seconds": round(time.time() - t0, 1)}


def gaps_for(rows: list[dict], model: str = "data/models/minilm") -> dict:
    """The probe on each row's task (data, max_examples: the rows its sweep had), cached in
    results/forecast_probes.json by cell."""
    import json

    from benchmarks.common import RESULTS, ROOT
    from ptft_ray.config import FinetuneConfig
    from ptft_ray.data.tasks import load_task
    from ptft_ray.tokenizer import HFTokenizer

    path = RESULTS / "forecast_probes.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    tok = HFTokenizer.from_dir(ROOT / model).to_json()
    for r in rows:
        if r["cell"] not in cache:
            task = load_task(FinetuneConfig(data=r["data"], max_examples=r["max_examples"]))
            cache[r["cell"]] = embedding_probe(task, str(ROOT / model), tok)
            path.write_text(json.dumps(cache, indent=1) + "\n")
    return cache
