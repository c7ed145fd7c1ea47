"""Checkpoints of a sharded (FSDP2) run, with torch.distributed.checkpoint (DCP).

    dcp/                 every rank writes its own shards of the model and the optimizer
                         (`__<rank>_0.distcp`; rank 0 also `.metadata`) into its local
                         checkpoint directory; Ray Train merges the ranks' directories into one
    model.safetensors    the whole model, gathered to rank 0's CPU one unit at a time (a Hugging
                         Face model: save_pretrained's files, sharded past max_shard_size), so
                         export, evaluation and `from_pretrained` read it as any checkpoint

DCP reshards on load: a run saved by N ranks resumes on M.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

DCP = "dcp"


def _options(full: bool):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=full, cpu_offload=full)


def save(d: str | Path | None, model: nn.Module, optimizer: torch.optim.Optimizer, rank: int) -> dict | None:
    """Every rank calls this (collectives inside); d: this rank's directory (created where
    missing). -> on rank 0 the whole model's state dict on the CPU, else None."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict

    msd, osd = get_state_dict(model, optimizer)
    Path(d, DCP).mkdir(parents=True, exist_ok=True)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(Path(d, DCP)))
    full = get_model_state_dict(model, options=_options(True))
    return full if rank == 0 else None


def load(d: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Model and optimizer state from a checkpoint's dcp/ into the sharded model, resharded
    to this run's world size."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    msd, osd = get_state_dict(model, optimizer)
    state = {"model": msd, "optim": osd}
    dcp.load(state, checkpoint_id=str(Path(d, DCP)))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])


def has_shards(d: str | Path) -> bool:
    return Path(d, DCP, ".metadata").is_file()
