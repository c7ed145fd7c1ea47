"""Parallelism applied in one place, as plain calls (torchtitan style): the model code knows
nothing of it. `parallelize` takes the model the task built and returns what the loop trains:

    activation checkpointing   each transformer block's forward recomputed in the backward
    fsdp                       FSDP2 `fully_shard`: one unit per block, then the root; fp32
                               master weights, 16-bit compute where asked, fp32 reduction
    ddp                        Ray Train's `prepare_model` (DistributedDataParallel)

Blocks are the longest stack of like modules: our GPT's `blocks`, a Hugging Face model's
layer list (the largest `nn.ModuleList`, as the strategies' layer groups take it).
"""
from __future__ import annotations

import functools
from contextlib import contextmanager, nullcontext

import torch
from torch import nn


def blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks: the largest ModuleList of the model (by parameters)."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m)]
    if not lists:
        return []
    return list(max(lists, key=lambda m: sum(p.numel() for p in m.parameters())))


def checkpoint_blocks(model: nn.Module) -> int:
    """Per-block activation checkpointing; -> blocks wrapped. The block's forward is replaced
    on the instance (its state_dict keys stay as they are) by a non-reentrant checkpoint of
    itself, which works under DDP, FSDP2 and peft's LoRA alike."""
    from torch.utils.checkpoint import checkpoint

    found = blocks(model)
    for b in found:
        if not getattr(b, "_ptft_checkpointed", False):
            b.forward = functools.partial(checkpoint, b.forward, use_reentrant=False)
            b._ptft_checkpointed = True
    return len(found)


def shard(model: nn.Module, dtype=None) -> nn.Module:
    """FSDP2 over the default process group: each block a unit, then the root (embeddings,
    final norm, head, and weights tied between them). Parameters stay fp32 (the optimizer's
    master weights); with a 16-bit compute dtype the all-gathered copies compute in it and
    gradients are reduced in fp32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = (MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) if dtype is not None
              else MixedPrecisionPolicy())
    for b in blocks(model):
        fully_shard(b, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def parallelize(model: nn.Module, strategy: str, checkpointing: bool, device: torch.device, world: int,
                ddp=None, dtype=None) -> nn.Module:
    """The model as the loop trains it, on `device`. strategy: 'fsdp' shards it over the
    process group (any world size, 1 included); otherwise `ddp` wraps it (Ray Train's
    prepare_model; None in a one-process trial)."""
    model = model.to(device)
    if checkpointing:
        checkpoint_blocks(model)
    if strategy == "fsdp":
        return shard(model, dtype)
    return ddp(model) if ddp else model


@contextmanager
def gradient_sync(model: nn.Module, sync: bool):
    """No gradient reduction on the micro-batches before the last one of a step (DDP's
    no_sync, FSDP2's set_requires_gradient_sync)."""
    if sync:
        with nullcontext():
            yield
    elif is_sharded(model):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        with model.no_sync():
            yield
