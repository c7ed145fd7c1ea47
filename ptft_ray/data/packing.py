"""Pack tokenized documents into fixed blocks of seq_len + 1 tokens.

Documents are joined with an end-of-text token into one stream and cut into blocks:

    stream = d0 <eot> d1 <eot> d2 <eot> ...        (L tokens)
    blocks = L // (seq_len + 1) full blocks, then one tail block padded with <pad>

Every token of the stream lands in exactly one block (nothing lost, nothing duplicated);
the training loop masks targets that are <pad>. The tail costs < 1 block per call, i.e.
per `data.docs_per_batch` documents.
"""
from __future__ import annotations

import zlib

import numpy as np


def pack(docs: list[list[int]], eot: int, pad: int, block: int) -> np.ndarray:
    if not docs:
        return np.zeros((0, block), dtype=np.int32)
    lengths = np.fromiter((len(d) + 1 for d in docs), dtype=np.int64, count=len(docs))
    stream = np.full(int(lengths.sum()), eot, dtype=np.int32)
    ends = np.cumsum(lengths)
    for d, end, n in zip(docs, ends, lengths):
        stream[end - n:end - 1] = d
    n_blocks = -(-len(stream) // block)  # ceil
    out = np.full(n_blocks * block, pad, dtype=np.int32)
    out[:len(stream)] = stream
    return out.reshape(n_blocks, block)


def unpack(blocks: np.ndarray, eot: int, pad: int) -> list[list[int]]:
    """Inverse of pack for tests and audits: the documents, in order."""
    stream = blocks.reshape(-1)
    stream = stream[stream != pad]
    cuts = np.flatnonzero(stream == eot)
    docs, start = [], 0
    for c in cuts:
        docs.append(stream[start:c].tolist())
        start = c + 1
    return docs


def is_val(text: str, val_fraction: float) -> bool:
    """Stable hash split: the same document is held out on every run and every worker."""
    return zlib.crc32(text.encode("utf-8", errors="replace")) % 10_000 < val_fraction * 10_000
