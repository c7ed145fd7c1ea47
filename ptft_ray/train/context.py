"""Where the loop runs: a Ray Train worker, or in-process inside a one-worker Tune trial.

Both give the loop the same handful of things: rank/world, device, DDP wrapping, batches
of a named dataset, report(metrics, checkpoint dir) and the checkpoint to resume from.
"""
from __future__ import annotations

import os
import shutil

import torch


class _Base:
    rank, world = 0, 1

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks -> a CPU tensor. The reduction runs on the worker's own device:
        with use_gpu Ray Train sets up NCCL, which reduces CUDA tensors only (a CPU tensor
        there fails at the first log step); on CPU workers the device is the CPU (gloo)."""
        if self.world > 1:
            t = t.to(self.device)
            torch.distributed.all_reduce(t)
        return t.cpu()

    def _iter(self, ds, name: str, batch_size: int, shuffle: int, seed: int):
        train = name == "train"
        return ds.iter_torch_batches(
            batch_size=batch_size, drop_last=train, device=self.device,
            local_shuffle_buffer_size=(shuffle or None) if train else None,
            local_shuffle_seed=seed if train and shuffle else None)

    def _restore(self, ckpt):
        """The checkpoint as a local directory to read, never copied per rank: on an object store
        it is fetched once per node into the node's cache (the ranks of the node share it);
        a local or shared-mount checkpoint is read where it is."""
        if ckpt is None:
            return None
        from .. import storage

        where = storage.to_uri(ckpt.filesystem, ckpt.path)
        return storage.localize(where, "checkpoint") if storage.is_uri(where) else ckpt.path


class TrainContext(_Base):
    """Inside `TorchTrainer(train_loop_per_worker=...)`."""

    def __init__(self):
        import ray.train
        import ray.train.torch

        c = ray.train.get_context()
        self.rank, self.world = c.get_world_rank(), c.get_world_size()
        self.device = ray.train.torch.get_device()

    def prepare(self, model: torch.nn.Module, parallel, dtype=None) -> torch.nn.Module:
        import ray.train.torch

        from .parallel import parallelize

        # DDP: Ray's prepare_model (moves to the device; wraps when world > 1)
        return parallelize(model, parallel.strategy, parallel.checkpointing, self.device, self.world,
                           ddp=ray.train.torch.prepare_model, dtype=dtype)

    def batches(self, name: str, batch_size: int, shuffle: int = 0, seed: int = 0):
        import ray.train

        return self._iter(ray.train.get_dataset_shard(name), name, batch_size, shuffle, seed)

    def report(self, metrics: dict, ckpt_dir: str | None) -> None:
        import ray.train

        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None)

    def resume_dir(self, run_dir: str | None = None) -> str | None:
        """Ray's latest registered checkpoint, or a newer complete one already on disk."""
        import ray.train

        from . import checkpoint as ckpt

        registered = self._restore(ray.train.get_checkpoint())
        if run_dir and "://" not in run_dir:
            step = ckpt.read_meta(registered)["state"]["step"] if registered else -1
            for d in ckpt.newer_on_disk(run_dir, step):
                if ckpt.is_complete(d):
                    cleanup(registered)
                    return self._restore(ray.train.Checkpoint.from_directory(str(d)))
        return registered


class TuneContext(_Base):
    """A one-worker trial run directly in the Tune trial actor (no worker group to start)."""

    def __init__(self, datasets: dict, use_gpu: bool = False):
        import os

        from ..errors import PtftError

        self.datasets = datasets
        if use_gpu and not torch.cuda.is_available():
            # never train on the CPU in silence when the user asked for a GPU
            raise PtftError(f"scaling.use_gpu=true but this trial sees no CUDA device (torch {torch.__version__}, "
                            f"CUDA build {torch.version.cuda or 'none'}, CUDA_VISIBLE_DEVICES="
                            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!r})")
        self.device = torch.device("cuda" if use_gpu else "cpu")

    def prepare(self, model: torch.nn.Module, parallel, dtype=None) -> torch.nn.Module:
        from .parallel import parallelize

        if parallel.strategy == "fsdp":  # refused on the driver (trial_resources): no process group here
            raise ValueError("FSDP needs Ray Train workers, not an in-process trial")
        return parallelize(model, "ddp", parallel.checkpointing, self.device, 1)

    def batches(self, name: str, batch_size: int, shuffle: int = 0, seed: int = 0):
        return self._iter(self.datasets[name], name, batch_size, shuffle, seed)

    def report(self, metrics: dict, ckpt_dir: str | None) -> None:
        from ray import tune

        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None)

    def resume_dir(self, run_dir: str | None = None) -> str | None:
        from ray import tune

        return self._restore(tune.get_checkpoint())


def cleanup(d: str | None) -> None:
    """Remove a temporary directory this process made (ptft-*); a checkpoint read in place or
    from the node's cache is left as it is."""
    if d and os.path.basename(d.rstrip("/")).startswith("ptft-"):
        shutil.rmtree(d, ignore_errors=True)
