"""Sharded and replicated training checked against one process (picotron style).

`parallel_steps_loop` runs on Ray Train workers: the model the task builds, parallelized as
the loop does it (`train/parallel.py`: DDP or FSDP2, with or without activation
checkpointing), trains `steps` AdamW steps; at each step every rank takes its contiguous
slice of one global batch. `reference_steps` runs the same steps on the whole batch in one
process. With equal items per rank the mean of the ranks' means is the global mean, so the
losses and the final weights must agree. `restore_and_step_loop` reads a sharded checkpoint
at any world size and takes one step on a fixed batch: the same loss before and after the
step at every world size means the model and the optimizer state came back whole.
"""
from __future__ import annotations

import numpy as np
import torch

from .param_groups import ParamGroups
from .reference import Check
from .spec import RunSpec


def _optimizer(groups: ParamGroups, spec: RunSpec, model) -> torch.optim.Optimizer:
    from .optim import make_optimizer

    return make_optimizer(groups, spec.config, next(model.parameters()).device)


def _full_state(model) -> dict[str, np.ndarray]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if hasattr(model, "module"):  # DDP
        model = model.module
    try:
        sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    except (RuntimeError, ValueError):  # no process group: one process
        sd = model.state_dict()
    return {k: v.detach().float().cpu().numpy().copy() for k, v in sd.items()}


def local_bytes(model, optimizer) -> int:
    """Bytes of parameters and optimizer state this rank holds (its shards under FSDP)."""
    def size(t):
        t = t.to_local() if hasattr(t, "to_local") else t
        return t.numel() * t.element_size()
    n = sum(size(p) for p in model.parameters())
    return n + sum(size(v) for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))


def parallel_steps_loop(check: Check) -> dict:
    import ray.train
    import ray.train.torch

    from .parallel import parallelize

    c = ray.train.get_context()
    rank, world = c.get_world_rank(), c.get_world_size()
    spec, task, groups = check.build()
    names = {id(p): n for n, p in task.model.named_parameters()}
    model = parallelize(task.model, check.strategy, check.checkpointing, ray.train.torch.get_device(),
                        world, ddp=ray.train.torch.prepare_model)
    if check.strategy == "fsdp":
        groups = groups.rebind(names, model)
    opt = _optimizer(groups, spec, model)
    per = check.rows // world
    losses = []
    for step in range(check.steps):
        total, n = task.loss(model, check.batch(step, slice(rank * per, (rank + 1) * per)))
        (total / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        both = torch.stack([total.detach().float(), n.float()])
        torch.distributed.all_reduce(both)
        losses.append((both[0] / both[1]).item())
    state = _full_state(model)
    return {"losses": losses, "params": state, "bytes": local_bytes(model, opt)} if rank == 0 else {}


def reference_steps(check: Check) -> dict:
    spec, task, groups = check.build()
    from .parallel import checkpoint_blocks

    if check.checkpointing:
        checkpoint_blocks(task.model)
    opt = _optimizer(groups, spec, task.model)
    losses = []
    for step in range(check.steps):
        total, n = task.loss(task.model, check.batch(step, slice(None)))
        (total / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append((total / n).item())
    return {"losses": losses, "params": _full_state(task.model), "bytes": local_bytes(task.model, opt)}


def restore_and_step_loop(check: Check) -> dict:
    """A sharded checkpoint (check.checkpoint) read at this world size, then the loss on a
    fixed global batch before and after one optimizer step."""
    import ray.train
    import ray.train.torch

    from . import checkpoint as ckpt
    from . import sharded
    from .parallel import parallelize

    c = ray.train.get_context()
    rank, world = c.get_world_rank(), c.get_world_size()
    spec, task, groups = check.build()
    ckpt.load_weights(task.model, check.checkpoint)
    names = {id(p): n for n, p in task.model.named_parameters()}
    model = parallelize(task.model, "fsdp", False, ray.train.torch.get_device(), world,
                        ddp=ray.train.torch.prepare_model)
    opt = _optimizer(groups.rebind(names, model), spec, model)
    sharded.load(check.checkpoint, model, opt)
    per, out = check.rows // world, []
    for _ in range(2):
        total, n = task.loss(model, check.batch(0, slice(rank * per, (rank + 1) * per)))
        both = torch.stack([total.detach().float(), n.float()])
        torch.distributed.all_reduce(both)
        out.append((both[0] / both[1]).item())
        (total / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return {"losses": out} if rank == 0 else {}
