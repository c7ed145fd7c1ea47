"""What a pretrained encoder knows of a task before any training (3-33 s on 2 CPUs): logistic
regression on its frozen, mean-pooled embeddings of a few hundred training rows, scored on
validation rows and on the training rows out of fold, against TF-IDF + LR on the same rows.
Where the frozen encoder is ahead of a bag of words, fine-tuning goes further ahead; where it
is behind, less (the forecast's `d` term; docs/decisions.md, "Two unseen tasks, and the frozen
encoder's gap", "The gap read on training rows too").
"""
from __future__ import annotations

import time

import numpy as np

# its seconds come off the sweep's budget (the planner allows it 10 %); fewer, shorter rows cost
# less but forecast worse (docs/decisions.md, "Two unseen tasks, and the frozen encoder's gap")
ROWS = 512       # training rows and validation rows each: enough that the gap's noise is ~2 points
MAX_LEN = 128    # tokens a row: the gap moves little past it, the cost grows with it
# where the whole probe would take longer than it may, it runs on the share of rows that fits,
# down to this many training rows; under it the gap is mostly noise and the probe is skipped
MIN_ROWS = 128
# the training rows are scored too, each by the fit on the other folds: a task with 50-100
# validation rows reads its gap on 5-10x the rows (docs/decisions.md, "The gap read on training rows too")
FOLDS = 5


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
                    rows: int = ROWS, seed: int = 0, within_s: float | None = None) -> dict:
    """-> {"embed_lr_val", "tfidf_lr_val" (the same rows), "embed_lr_pooled", "tfidf_lr_pooled"
    (over the validation rows and the training rows out of fold), "gap" (error reduction of the
    first pooled over the second: (e - t) / (1 - t)), "rows", "max_len", "seconds"}; where a timed batch
    says the whole would take over `within_s`, the share of rows that fits (at least MIN_ROWS
    training rows), or else {"skipped", "estimated_s", "seconds"}. model_dir:
    a Hugging Face encoder directory whose weights are safetensors (checked where the source
    was resolved)."""
    import torch
    from transformers import AutoModel

    from .. import tokenizer as toks
    from ..models.hf import quiet_torchao

    t0 = time.time()
    rng = np.random.default_rng(seed)
    tr, va = _sample(task.splits["train"], rows, rng), _sample(task.splits["val"], rows, rng)
    quiet_torchao()
    try:
        model = AutoModel.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True).eval()
    except (OSError, ValueError) as e:  # no safetensors weights there (a config alone, a pickle)
        return {"skipped": f"cannot read {model_dir}'s weights: {str(e).splitlines()[0][:160]}",
                "seconds": round(time.time() - t0, 1)}
    tok = toks.from_json(tokenizer_json)
    length = min(max_len, MAX_LEN)
    estimated = None
    if within_s is not None:
        spent = time.time() - t0
        remaining = _embed_seconds(model, tok, [task.texts[i] for i in np.concatenate([tr, va])], length)
        estimated = spent + remaining
        keep = rows_within(len(tr), remaining, within_s - (time.time() - t0))
        if keep < min(MIN_ROWS, len(tr)):
            return {"skipped": f"~{estimated:.0f} s estimated, over the {within_s:.0f} s it may take even on "
                               f"{MIN_ROWS} training rows", "estimated_s": round(estimated, 1),
                    "seconds": round(time.time() - t0, 1)}
        tr, va = shrink(tr, va, keep, rng)
    y_tr, y_va = task.labels[tr], task.labels[va]
    x_tr, x_va = [task.texts[i] for i in tr], [task.texts[i] for i in va]
    e_tr, e_va = _embed(model, tok, x_tr, length), _embed(model, tok, x_va, length)
    embed_va, tfidf_va = _right(e_tr, x_tr, y_tr, e_va, x_va, y_va)
    embed_tr, tfidf_tr = _out_of_fold(e_tr, x_tr, y_tr, np.random.default_rng(seed + 1))
    n = len(va) + len(tr)
    embed, tfidf = (embed_va + embed_tr) / n, (tfidf_va + tfidf_tr) / n
    return {"embed_lr_val": round(embed_va / len(va), 4), "tfidf_lr_val": round(tfidf_va / len(va), 4),
            "embed_lr_pooled": round(embed, 4), "tfidf_lr_pooled": round(tfidf, 4),
            "gap": round(gap(embed, tfidf), 4), "rows": [len(tr), len(va)],
            "max_len": length, "seconds": round(time.time() - t0, 1),
            **({"estimated_s": round(estimated, 1)} if estimated is not None else {})}


def _right(e_fit: np.ndarray, x_fit: list[str], y_fit: np.ndarray, e_at: np.ndarray, x_at: list[str],
           y_at: np.ndarray) -> tuple[int, int]:
    """Rows of `at` predicted right by LR on the frozen embeddings and by TF-IDF + LR, both fitted
    on `fit`; with one class to fit on, both predict it."""
    from sklearn.linear_model import LogisticRegression

    from ..finetune.baseline import tfidf_lr_predict

    if len(set(y_fit.tolist())) < 2:
        same = int((y_at == y_fit[0]).sum())
        return same, same
    embed = LogisticRegression(C=1.0, max_iter=2000).fit(e_fit, y_fit).predict(e_at)
    return int((embed == y_at).sum()), int((tfidf_lr_predict(x_fit, y_fit, x_at) == y_at).sum())


def _out_of_fold(e: np.ndarray, x: list[str], y: np.ndarray, rng) -> tuple[int, int]:
    """Training rows predicted right (embeddings, TF-IDF) by fits on the other FOLDS - 1 folds."""
    right = np.zeros(2, dtype=int)
    for fold in np.array_split(rng.permutation(len(y)), FOLDS):
        rest = np.setdiff1d(np.arange(len(y)), fold)
        if len(fold) and len(rest):
            right += _right(e[rest], [x[i] for i in rest], y[rest], e[fold], [x[i] for i in fold], y[fold])
    return int(right[0]), int(right[1])


def shrink(tr: np.ndarray, va: np.ndarray, keep: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """`keep` of the training rows and the same share of the validation rows (at least one)."""
    if keep >= len(tr):
        return tr, va
    return _sample(tr, keep, rng), _sample(va, max(1, len(va) * keep // len(tr)), rng)


def rows_within(n: int, remaining_s: float, allowed_s: float) -> int:
    """Of `n` training rows, how many the probe can embed (with the same share of validation
    rows) when all of them would take `remaining_s` more and it has `allowed_s` left: the time
    grows with the rows embedded."""
    if remaining_s <= allowed_s:
        return n
    return max(0, int(n * allowed_s / remaining_s))


def _embed_seconds(model, tok, texts: list[str], length: int, timed: int = 32) -> float:
    """Seconds to embed all of `texts`: one timed batch of `timed` rows spread over them, per
    token it padded to, times the tokens of all rows (the probe itself batches like lengths
    together, so it pads little)."""
    sample = texts[:: max(1, len(texts) // timed)][:timed]
    t = time.time()
    _embed(model, tok, sample, length)
    took = time.time() - t
    padded = len(sample) * max(len(x) for x in tok.encode_examples(sample, length))
    return took * sum(len(x) for x in tok.encode_examples(texts, length)) / max(1, padded)


def gap(embed: float, tfidf: float) -> float:
    """The frozen encoder's error reduction over TF-IDF + LR, within [-1, 1]; 0 where TF-IDF + LR
    makes no error (nothing left to reduce, so nothing is learnt of the encoder)."""
    if tfidf >= 1.0:
        return 0.0
    return min(1.0, max(-1.0, (embed - tfidf) / (1.0 - tfidf)))


def encoder_gap(task, sources: list, family, within_s: float | None = None) -> dict | None:
    """The probe on the first checkpoint of a Hugging Face encoder (the family the forecast's gap
    term was fitted on): the directory itself, or for our checkpoint of one (continued
    pretraining) the directory it started from, as the fit measured the models before any
    adaptation. None where there is none; "skipped" where it would take over `within_s` or the
    weights cannot be read (the forecast then uses its form without the term)."""
    from ..models.hf import is_hf_dir
    from ..storage import localize

    for s in sources:
        if family(s) == "hf_encoder" and s.path and s.model.hf:
            local = localize(s.model.hf, "model.hf")
            if is_hf_dir(local):
                return embedding_probe(task, str(local), s.tokenizer_json, within_s=within_s)
    return None
