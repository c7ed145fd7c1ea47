"""The one training loop: pretraining and fine-tuning, on a Ray Train worker or in a Tune trial.

Read top to bottom: resume state -> data stream (first batch fetched meanwhile) -> build
task + model -> strategy plan -> resume weights / optimizer -> for each step:
set the LR, accumulate grad_accum micro-batches, clip, step -> log / eval / checkpoint.
The optimizer and its LR schedule are in optim.py, the batch stream in stream.py.

Arithmetic of one optimizer step (pretraining):
    tokens per step = batch_size * seq_len * grad_accum * world_size
    e.g. 16 * 128 * 1 * 2 = 4096 tokens; 500 steps = 2.0M tokens
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field

import torch

from ..cluster import quiet_ray_logs
from ..config import Config
from ..errors import DivergenceError, PtftError
from .param_groups import ParamGroups
from .parallel import gradient_sync, is_sharded
from .precision import autocast, compute_dtype, grad_scaler
from . import checkpoint as ckpt
from .context import TrainContext, cleanup
from .optim import lr_factor, make_optimizer, restore_optimizer
from .spec import RunSpec
from .stream import FirstBatchEarly, batch_stream
from .tblog import log_scalars, tensorboard_writer


def say(line: str) -> None:
    """One progress line. Not print(): Train V2 patches print and, with Ray's redirected
    stdout, every line would reach the driver twice."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def trace(path: str, step: int, state: dict, batch: dict, rank: int = 0) -> None:
    """Audit line: which samples this step trained on (crc32 of each row of the batch), one
    line per rank (appends of one short line each: ranks on one machine share the file)."""
    key = "tokens" if "tokens" in batch else "input_ids"
    rows = batch[key].cpu().numpy()
    with open(path, "a") as f:
        f.write(json.dumps({"step": step, "rank": rank, "pid": os.getpid(), "epoch": state["epoch"],
                            "batch_in_epoch": state["batch_in_epoch"],
                            "samples": [zlib.crc32(r.tobytes()) for r in rows]}) + "\n")


def train_loop_per_worker(config: dict) -> dict:
    """Entry point given to TorchTrainer: Ray hands over its loop config, which holds one RunSpec."""
    return run(config["spec"], TrainContext())


def evaluate(task, model, ctx, cfg: Config, amp) -> dict:
    model.eval()
    stats = None
    with torch.no_grad(), amp:
        for i, batch in enumerate(ctx.batches("val", cfg.train.batch_size)):
            if cfg.train.eval_batches and i >= cfg.train.eval_batches:
                break
            s = task.eval_stats(model, batch)
            stats = s if stats is None else stats + s
    model.train()
    if stats is None:
        raise PtftError("the validation data yields no batch")
    return task.metrics(ctx.all_reduce(stats))


@dataclass
class Live:
    """What one run holds while it trains: the state a checkpoint saves, and the objects the
    step needs. state["train_s"]: seconds in training steps (no evaluation, no checkpoints),
    so that tokens / train_s is the run's throughput, resumes included."""
    spec: RunSpec
    ctx: object
    state: dict = field(default_factory=lambda: {"step": 0, "tokens": 0, "epoch": 0,
                                                 "batch_in_epoch": 0, "train_s": 0.0})
    history: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    best: float | None = None      # what the next best-only checkpoint must beat
    scaler: object = None          # fp16's GradScaler (a pass-through in other precisions)

    def resume_from(self, meta: dict) -> None:
        """The state, history and metrics a checkpoint's meta saved."""
        self.state.update(meta["state"])
        self.history, self.metrics = meta.get("history", []), dict(meta.get("metrics", {}))
        # batches are counted per rank: at another world size the same share of the epoch
        world = self.ctx.world
        self.state["batch_in_epoch"] = self.state["batch_in_epoch"] * self.state.get("world", world) // world


class Window:
    """Sums over the steps since the last log line, reduced over ranks when read."""

    def __init__(self, device):
        self.loss = torch.zeros((), device=device)
        self.items = torch.zeros((), device=device)  # what the loss averages over (masked tokens for MLM)
        self.seen = torch.zeros((), device=device)   # what throughput counts (every input token / example)
        self.reset()

    def reset(self):
        self.steps, self.t0, self.data_wait = 0, time.perf_counter(), 0.0

    def read(self, ctx) -> torch.Tensor:
        total = ctx.all_reduce(torch.stack([self.loss, self.items.float(), self.seen.float()]))
        self.loss.zero_(), self.items.zero_(), self.seen.zero_()
        return total


def run(spec: RunSpec, ctx) -> dict:
    quiet_ray_logs()  # this worker's / trial's own Ray loggers
    cfg, tc = spec.config, spec.config.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    live, resume = Live(spec, ctx), ctx.resume_dir(spec.run_dir)
    if resume:
        live.resume_from(ckpt.read_meta(resume))
    live.state["world"] = ctx.world
    # where the data resumes is known now: its first batch streams in while the model is built
    data = FirstBatchEarly(batch_stream(ctx, live.state, tc.batch_size, cfg.data.shuffle_buffer, tc.seed))
    torch.manual_seed(tc.seed)  # identical init on every rank (DDP also broadcasts rank 0's)
    task = spec.task.build(spec)
    raw = task.model
    groups = task.groups(spec)  # which parameters train, at which LR
    if resume and spec.parallel.strategy != "fsdp":  # a sharded run reads its weights with its optimizer (DCP)
        ckpt.load_weights(raw, resume)
    live.best = live.metrics.get(spec.keep.metric) if spec.keep.best_only else None
    raw.train()  # from_pretrained hands back a model in eval mode (dropout off)
    names = {id(p): n for n, p in raw.named_parameters()}
    dtype = compute_dtype(tc.precision, ctx.device.type)
    model = ctx.prepare(raw, spec.parallel, dtype)
    if is_sharded(model):  # sharding replaced the parameters the groups hold
        groups = groups.rebind(names, model)
    optimizer = make_optimizer(groups, cfg, ctx.device)
    if resume:
        restore_optimizer(model, optimizer, resume)
        cleanup(resume)
    amp = autocast(dtype, ctx.device)
    live.scaler = grad_scaler(dtype, ctx.device)
    if "grad_scaler" in live.state:  # fp16: the loss scale the interrupted run had reached
        live.scaler.load_state_dict(live.state["grad_scaler"])
    # compiling fuses the memory-bound ops that dominate small models on CPU; evaluation stays eager
    loss_fn = torch.compile(task.loss) if tc.compile else task.loss
    window, tb = Window(ctx.device), tensorboard_writer(spec.run_dir, ctx.rank)
    while live.state["step"] < spec.steps.max_steps:
        train_step(live, task, model, optimizer, groups, loss_fn, amp, data, window)
        s = live.state["step"]
        do_log, do_eval, do_ckpt = due(spec, s)
        if do_log or do_eval or do_ckpt:
            log_window(live, task, optimizer, window)
        if do_eval:
            live.metrics.update(evaluate(task, model, ctx, cfg, amp))
            if ctx.rank == 0:
                say(f"[{task.name}] step {s} " + " ".join(f"{k} {v:.4f}" for k, v in live.metrics.items()
                                                         if k.startswith("val_")))
        if do_log or do_eval:
            live.history.append(dict(live.metrics))
            if tb:
                log_scalars(tb, live.metrics, s)
        if do_eval or do_ckpt:
            checkpoint(live, task, raw, optimizer)
        if do_log or do_eval or do_ckpt:
            window.reset()
    if tb:
        tb.close()
    return {**live.metrics, "history": live.history}


def due(spec: RunSpec, s: int) -> tuple[bool, bool, bool]:
    """-> (log, evaluate, checkpoint) after step s. Best-only runs checkpoint exactly at
    evaluations: each Tune report carries the metric."""
    tc, last = spec.config.train, s == spec.steps.max_steps
    do_log = s % tc.log_every == 0 or last
    do_eval = bool(spec.steps.eval_every and s % spec.steps.eval_every == 0) or last
    do_ckpt = do_eval if spec.keep.best_only else (s % spec.config.checkpoint.every_steps == 0 or last)
    return do_log, do_eval, do_ckpt


def train_step(live: Live, task, model, optimizer, groups: ParamGroups, loss_fn, amp, data, window: Window):
    """One optimizer step: set the LR, accumulate grad_accum micro-batches, clip, step."""
    spec, ctx, state = live.spec, live.ctx, live.state
    cfg, tc, sched = spec.config, spec.config.train, spec.config.schedule
    step = state["step"]
    # dropout's random stream is a function of (seed, rank, step): it differs per rank, and a
    # resumed run draws what the uninterrupted one would have at the same step
    torch.manual_seed((tc.seed * 1_000_003 + ctx.rank) * 1_000_003 + step)
    mult = lr_factor(step, sched.warmup_steps, spec.steps.max_steps, sched.min_lr_ratio, sched.decay)
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * mult
    for micro in range(tc.grad_accum):
        t_data = time.perf_counter()
        batch = next(data)
        window.data_wait += time.perf_counter() - t_data  # time the step waited for its batch
        if tc.trace_file:
            trace(tc.trace_file, step + 1, state, batch, ctx.rank)
        # gradients are all-reduced once per optimizer step, on the last micro-batch
        sync = micro == tc.grad_accum - 1 or ctx.world == 1
        if hasattr(task, "reseed"):  # masked LM: this micro-batch's masks, the same after a resume
            task.reseed(tc.seed, ctx.rank, step, micro)
        with gradient_sync(model, sync), amp:
            total, n = loss_fn(model, batch)
            live.scaler.scale(total / n.clamp_min(1) / tc.grad_accum).backward()
        window.loss += total.detach().float()
        window.items += n
        window.seen += task.seen(batch) if hasattr(task, "seen") else n
    for until, params in groups.frozen_until:  # gradual unfreezing: frozen groups drop grads
        if step < until:
            for p in params:
                p.grad = None
    if cfg.optim.grad_clip:
        live.scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
        trainable = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.grad_clip)
    live.scaler.step(optimizer)  # fp16: skipped where a gradient overflowed, and the scale lowered
    live.scaler.update()
    optimizer.zero_grad(set_to_none=True)
    state["step"] = step + 1
    window.steps += 1


def log_window(live: Live, task, optimizer, window: Window) -> None:
    """Train loss and throughput over the window; a non-finite loss stops the run."""
    spec, state, s = live.spec, live.state, live.state["step"]
    total = window.read(live.ctx)
    if total[1] <= 0:
        return
    train_loss, max_steps = (total[0] / total[1]).item(), spec.steps.max_steps
    if not math.isfinite(train_loss):
        raise DivergenceError(f"loss is {train_loss} at step {s} (optim.lr={spec.config.optim.lr}): "
                              f"training diverged")
    elapsed = time.perf_counter() - window.t0
    state["tokens"] += int(total[2].item())
    state["train_s"] = state.get("train_s", 0.0) + elapsed
    rate = total[2].item() / max(elapsed, 1e-9)
    live.metrics.update(step=s, max_steps=max_steps, epoch=state["epoch"], train_loss=train_loss,
                        lr=optimizer.param_groups[0]["lr"], **{task.unit: state["tokens"]},
                        **{f"{task.unit}_per_s": rate},
                        data_wait_frac=window.data_wait / max(elapsed, 1e-9), train_s=state["train_s"])
    eta = (max_steps - s) * elapsed / max(window.steps, 1)
    if live.ctx.rank == 0:
        say(f"[{task.name}] step {s}/{max_steps} loss {train_loss:.4f} {rate:.0f} {task.unit}/s eta {eta:.0f}s")


def checkpoint(live: Live, task, raw, optimizer) -> None:
    """Report the metrics with a checkpoint: rank 0's directory, or under FSDP every rank's
    (its DCP shards; rank 0 adds the gathered weights and meta.json). A best-only run writes
    none that does not improve its metric (less disk, fewer experiment snapshots)."""
    spec, ctx = live.spec, live.ctx
    improved = spec.keep.improves(live.metrics.get(spec.keep.metric), live.best)
    if improved:
        live.best = live.metrics[spec.keep.metric]
    write = improved or not spec.keep.best_only   # the same on every rank (reduced metrics)
    if live.scaler.is_enabled():  # fp16: the loss scale a resume continues from
        live.state["grad_scaler"] = live.scaler.state_dict()
    meta = {"format": 1, "task": task.name, "state": dict(live.state), "history": live.history,
            "metrics": dict(live.metrics), "config": spec.config.to_dict(), **spec.task.meta(),
            "init_from": spec.init_from, "lineage": spec.lineage}
    d = None
    if write and is_sharded(raw):  # sharded in place: every rank writes its shards, Ray merges the directories
        from . import sharded

        d = tempfile.mkdtemp(prefix="ptft-ckpt-")
        full = sharded.save(d, raw, optimizer, ctx.rank)
        if ctx.rank == 0:
            ckpt.fill_dir(d, raw, meta, spec.tokenizer, state=full)
    elif write and ctx.rank == 0:
        d = tempfile.mkdtemp(prefix="ptft-ckpt-")
        ckpt.fill_dir(d, raw, meta, spec.tokenizer, optimizer)
    ctx.report(dict(live.metrics), d)
    cleanup(d)
