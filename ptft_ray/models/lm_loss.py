"""Cross-entropy over a large vocabulary without the whole batch's logits.

A 128k-152k vocabulary turns micro-batch 8 x 2,048 tokens into 2.1 G logits: 8 GiB in fp32,
plus their gradient. The loss is instead summed over chunks of positions; each chunk's
logits are recomputed in the backward (a non-reentrant checkpoint), so one chunk's logits
live at a time. Same sum, same gradients (tests/test_lm_loss.py); docs/decisions.md,
"Chunked loss".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE = -100
CHUNK_BYTES = 2 ** 27     # auto: a chunk's fp32 logits stay under 128 MiB


def chunk_tokens(tokens: int, vocab: int, setting: int = 0) -> int:
    """Positions per chunk; `tokens` (no chunking) where the whole batch's fp32 logits fit
    the auto limit. setting: train.loss_chunk_tokens (0 = auto)."""
    if setting:
        return min(setting, tokens)
    per = max(1, CHUNK_BYTES // (4 * vocab))
    return tokens if tokens <= per else per


def _ce(h: torch.Tensor, t: torch.Tensor, head) -> torch.Tensor:
    return F.cross_entropy(head(h).float(), t, ignore_index=IGNORE, reduction="sum")


def cross_entropy_sum(hidden: torch.Tensor, head, targets: torch.Tensor, chunk: int) -> torch.Tensor:
    """Sum over positions of -log p(target) with logits = head(hidden); targets equal to
    IGNORE count nothing. hidden [..., D], targets [...]."""
    h, t = hidden.flatten(0, -2), targets.flatten()
    if chunk >= t.numel():
        return _ce(h, t, head)
    parts = [checkpoint(_ce, h[i:i + chunk], t[i:i + chunk], head, use_reentrant=False)
             for i in range(0, t.numel(), chunk)]
    return torch.stack(parts).sum()
