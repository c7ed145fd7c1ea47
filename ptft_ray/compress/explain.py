"""`ptft-ray explain`: which tokens made the model say what it said.

Captum's LayerIntegratedGradients on the token-embedding layer: the attribution of token i
is the integral of d(target logit)/d(embedding_i) from a baseline to the real embedding,
times (embedding_i - baseline_i), summed over the embedding's width (Sundararajan et al.
2017). The baseline replaces every real token by the pad token and keeps the model's own
special tokens ([CLS], [SEP]), so attributions explain the words, not the template.

Completeness: the attributions sum to f(text) - f(baseline) (the logit difference); Captum's
convergence delta is how far the n-step Riemann sum misses it. We report it as a fraction of
the logit difference (`relative_delta`): under 5 % on nearly every text at 50 steps.
The target is the predicted class's logit (a binary model of ours has one logit: its sign
is the class, so class 0's target is -logit).
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.tasks import encode
from ..errors import PtftError
from ..finetune.predictor import Predictor, on_device


def _embedding_layer(model) -> torch.nn.Module:
    if hasattr(model, "hf"):
        return model.hf.get_input_embeddings()
    return model.backbone.tok_emb


class Explainer:
    def __init__(self, model_dir: str, n_steps: int = 50, device: str = "cpu"):
        # the fine-tuned model's own probabilities: a blend's TF-IDF + LR share has no gradient
        # path to the tokens, so an export's blend (finetune/blend.py) is not explained
        self.pr = Predictor(model_dir, device, blend=False)
        from ..finetune import blend

        w = blend.weight_of(self.pr.dir)
        self.note = (f"the fine-tuned model alone: the export blends it with TF-IDF + LR at weight "
                     f"{w:g}, and that share is not attributed") if w is not None else None
        if self.pr.meta.get("quantized"):
            raise PtftError(f"{model_dir} is quantized (int8 weights have no gradient path); explain its fp32 export")
        from captum.attr import LayerIntegratedGradients

        self.model, self.tok, self.n_steps = self.pr.model, self.pr.tok, n_steps
        self.special = set(getattr(self.tok, "special_ids", []))
        self.lig = LayerIntegratedGradients(self._target_logit, _embedding_layer(self.model))

    def _target_logit(self, ids, mask, target_sign_or_index):
        logits = self.model(ids, mask)
        if logits.ndim == 1:                      # one logit: +logit for labels[1], -logit for labels[0]
            return logits * target_sign_or_index
        return logits[:, target_sign_or_index]

    def explain(self, text: str, target: int | None = None) -> dict:
        ids_np, lengths = encode(self.tok, [text], self.pr.max_len)
        n = int(lengths[0])
        if n == 0:
            raise PtftError("explain: the text is empty")
        ids = torch.as_tensor(ids_np[:, :n]).long().to(self.pr.device)
        mask = torch.ones_like(ids, dtype=torch.bool)
        probs = self.pr.probs([text])[0]
        cls = int(probs.argmax()) if target is None else int(target)
        with torch.no_grad():
            binary = self.model(ids, mask).ndim == 1
        arg = (1 if cls == 1 else -1) if binary else cls
        base = ids.clone()
        keep = torch.tensor([int(i) in self.special for i in ids[0]], device=ids.device)
        base[0, ~keep] = self.tok.pad_id
        self.model.zero_grad(set_to_none=True)
        attr, delta = self.lig.attribute(ids, baselines=base, additional_forward_args=(mask, arg),
                                         n_steps=self.n_steps, internal_batch_size=self.n_steps,
                                         return_convergence_delta=True)
        with torch.no_grad():
            diff = float(self._target_logit(ids, mask, arg) - self._target_logit(base, mask, arg))
        per_token = attr.sum(-1)[0].detach().float().cpu().numpy()
        return {"text": text, "label": self.pr.labels[cls], "probability": round(float(probs[cls]), 6),
                "tokens": self.tok.token_strings(ids[0].tolist()),
                "attributions": [round(float(a), 6) for a in per_token], "delta": round(float(delta[0]), 6),
                "logit_difference": round(diff, 6), "relative_delta": round(abs(float(delta[0])) / max(abs(diff), 1e-9), 6),
                "special": keep.tolist(), **({"explains": self.note} if self.note else {})}


def explain_texts(model_dir: str, texts: list[str], n_steps: int = 50, gpus: float = 0.0) -> list[dict]:
    """Each text explained, here on the CPU, or with gpus in a Ray task on a GPU (the driver's
    node of a GPU cluster usually has none)."""
    return on_device(_explain_all, model_dir, gpus, texts, n_steps)


def _explain_all(model_dir: str, device: str, texts: list[str], n_steps: int) -> list[dict]:
    ex = Explainer(model_dir, n_steps, device)
    return [ex.explain(t) for t in texts]


def deletion_drop(ex: Explainer, explanation: dict, k: int = 3, rng: np.random.Generator | None = None) -> tuple[float, float]:
    """Probability the predicted class loses when the k most-attributed tokens are deleted,
    and when k random (non-special) tokens are: faithful attributions hurt more."""
    rng = rng or np.random.default_rng(0)
    ids_np, lengths = encode(ex.tok, [explanation["text"]], ex.pr.max_len)
    ids = ids_np[0, :int(lengths[0])]
    words = [i for i, s in enumerate(explanation["special"]) if not s]
    k = min(k, max(len(words) - 1, 0))
    if k == 0:
        return 0.0, 0.0
    cls = ex.pr.labels.index(explanation["label"])
    top = sorted(words, key=lambda i: -explanation["attributions"][i])[:k]
    rand = list(rng.choice(words, size=k, replace=False))

    def prob_without(drop):
        kept = torch.as_tensor(np.delete(ids, drop))[None].long().to(ex.pr.device)
        with torch.no_grad():
            from ..finetune.predictor import probabilities

            return float(probabilities(ex.model(kept, torch.ones_like(kept, dtype=torch.bool)))[0, cls])

    p = explanation["probability"]
    return p - prob_without(top), p - prob_without(rand)


def class_tokens(explanations: list[dict], top: int = 10, min_count: int = 2) -> dict[str, list]:
    """Per predicted class, the tokens with the highest mean attribution toward it."""
    sums: dict[str, dict[str, list]] = {}
    for e in explanations:
        acc = sums.setdefault(e["label"], {})
        for tok, a, special in zip(e["tokens"], e["attributions"], e["special"]):
            if not special:
                acc.setdefault(tok, []).append(a)
    return {label: [(t, round(float(np.mean(v)), 4), len(v)) for t, v in
                    sorted(acc.items(), key=lambda kv: -np.mean(kv[1])) if len(v) >= min_count][:top]
            for label, acc in sums.items()}
