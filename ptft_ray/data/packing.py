"""Pack tokenized documents into fixed blocks of seq_len + 1 tokens.

Documents are joined with an end-of-text token into one stream and cut into blocks:

    stream = d0 <eot> d1 <eot> d2 <eot> ...        (L tokens)
    blocks = L // (seq_len + 1) full blocks, then one tail block padded with <pad>

Every token of the stream lands in exactly one block (nothing lost, nothing duplicated);
the training loop masks the targets that are padding (`padding`). The tail costs < 1 block
per call, i.e. per `data.docs_per_batch` documents.
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


def padding(blocks, pad: int, eot: int):
    """[rows, block] bool (torch): the padded tail of each block. A tokenizer without a pad
    token pads with its EOS (GPT-2, Llama): there the tail run's first token is the last
    document's real end of text and is no padding, so end-of-text stays a target; EOS tokens
    inside a block are never padding. (Only an empty document's EOS right before the tail of
    a full block is lost to this rule.)"""
    import torch

    x = torch.as_tensor(blocks)
    is_pad = x == pad
    if pad != eot:
        return is_pad
    tail = is_pad.flip(-1).to(torch.int8).cumprod(-1).flip(-1).bool()   # the trailing run
    first = tail & ~torch.cat([torch.zeros_like(tail[..., :1]), tail[..., :-1]], -1)
    return tail & ~first


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
