"""Measured throughput of a checkpoint that carries none (a Hugging Face model as it is):
a few timed fine-tuning steps on the live cluster, in a one-CPU Ray task shaped like a
CPU trial (one torch thread), or on one GPU where the trials will use one.

    tokens/s = steps x batch x seq_len / seconds   (after one untimed warm-up step)
"""
from __future__ import annotations

import time

BATCH, SEQ_LEN, STEPS = 16, 64, 3


def _timed_steps(model_section: dict, path: str | None, vocab_size: int, pad_id: int, use_gpu: bool) -> float:
    import torch

    from ..config import ModelConfig
    from ..models import build_classifier

    torch.set_num_threads(1)
    device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
    model = build_classifier(ModelConfig(**model_section), ["a", "b"], vocab_size, pad_id, 0.1, path).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab_size, (BATCH, SEQ_LEN), generator=g).to(device)
    mask = torch.ones_like(ids, dtype=torch.bool)
    y = torch.randint(0, 2, (BATCH,), generator=g).to(device)

    def step():
        logits = model(ids, mask)
        loss = (torch.nn.functional.cross_entropy(logits, y) if logits.ndim == 2
                else torch.nn.functional.binary_cross_entropy_with_logits(logits, y.float()))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up: allocations, first-call overheads
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(STEPS):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return STEPS * BATCH * SEQ_LEN / (time.perf_counter() - t0)


def measure_rate(source, use_gpu: bool = False) -> float:
    """Training tokens/s per worker of `source` (finetune.runner.Source), measured now."""
    import ray

    from .. import tokenizer as toks

    tok = toks.from_json(source.tokenizer_json)
    task = ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0)(_timed_steps)
    return float(ray.get(task.remote(source.model, source.path, tok.vocab_size, tok.pad_id, use_gpu)))
