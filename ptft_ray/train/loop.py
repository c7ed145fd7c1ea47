"""The one training loop: pretraining and fine-tuning, on a Ray Train worker or in a Tune trial.

Read top to bottom: resume state -> data stream (first batch fetched meanwhile) -> build
task + model -> strategy plan -> resume weights / optimizer -> for each step:
set the LR, accumulate grad_accum micro-batches, clip, step -> log / eval / checkpoint.

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
from contextlib import nullcontext

import torch

from ..cluster import quiet_ray_logs
from ..config import Config
from ..errors import DivergenceError, PtftError
from .plan import Plan
from .precision import autocast
from . import checkpoint as ckpt
from .context import TrainContext, cleanup
from .tasks import build_task
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


def train_loop_per_worker(lc: dict) -> dict:
    """Entry point given to TorchTrainer; `lc` is the config dict plus task info."""
    return run(lc, TrainContext())


def lr_factor(step: int, warmup: int, max_steps: int, min_ratio: float, decay: str) -> float:
    """Linear warmup to 1, then cosine / linear decay to min_ratio at max_steps."""
    if step < warmup:
        return (step + 1) / warmup
    if decay == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if decay == "cosine" else 1 - progress
    return min_ratio + (1 - min_ratio) * shape


def make_optimizer(plan: Plan, cfg: Config, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the plan's groups; matrices decay, biases / norms / gains do not."""
    o, groups, seen = cfg.optim, [], set()
    for params, lr in plan.groups:
        params = [p for p in params if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in params)
        for decay in (True, False):
            ps = [p for p in params if (p.ndim >= 2) == decay]
            if ps:
                groups.append({"params": ps, "lr": lr, "base_lr": lr,
                               "weight_decay": o.weight_decay if decay else 0.0})
    if not groups:
        raise PtftError("nothing to train: the strategy left no parameter trainable")
    # fused: one kernel over all parameters instead of a loop of ops per tensor list. On one
    # CPU thread, MiniLM's 22.7M parameters: 24 ms a step fused vs 171-212 ms default (foreach),
    # itself ~20 % of a ~0.9 s batch-16 fine-tuning step (benchmarks.peer --parts profile);
    # Hugging Face Trainer's default too
    return torch.optim.AdamW(groups, betas=(o.beta1, o.beta2), eps=o.eps,
                             fused=device.type in ("cuda", "cpu"))


def _stream(ctx, state: dict, batch_size: int, shuffle: int, seed: int):
    """Batches across epochs. Ray Data iterators cannot resume, so after a restart the
    batches the checkpoint already consumed in this epoch are skipped (ray issue 37633)."""
    while True:
        n = 0
        for batch in ctx.batches("train", batch_size, shuffle, seed + state["epoch"]):
            n += 1
            if n <= state["batch_in_epoch"]:
                continue
            state["batch_in_epoch"] = n
            yield batch
        if n == 0:
            raise PtftError(f"the training data yields no batch of {batch_size} per worker "
                            f"(too little data for train.batch_size x scaling.num_workers)")
        state["epoch"], state["batch_in_epoch"] = state["epoch"] + 1, 0


class FirstBatchEarly:
    """Fetches a stream's first batch on a thread while the model is built, then steps the
    stream itself. Ray Data's first batch of a run is its slowest: the split coordinator
    starts the read and map tasks (1.5 s of a 29 s MiniLM fine-tuning epoch on 2 CPUs,
    benchmarks.peer --parts speed), time in which the worker otherwise only loads weights.
    An error met while fetching is raised where the loop asks for that batch."""

    def __init__(self, stream):
        import threading

        self.stream, self.first, self.error = stream, None, None
        self.thread = threading.Thread(target=self._fetch, name="ptft-first-batch", daemon=True)
        self.thread.start()

    def _fetch(self):
        try:
            self.first = next(self.stream)
        except BaseException as e:  # noqa: BLE001 - handed to the loop's thread
            self.error = e

    def __iter__(self):
        return self

    def __next__(self):
        if self.thread is None:
            return next(self.stream)
        self.thread.join()
        self.thread, first, self.first = None, self.first, None
        if self.error is not None:
            raise self.error
        return first


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


def run(lc: dict, ctx) -> dict:
    quiet_ray_logs()  # this worker's / trial's own Ray loggers
    cfg = Config.from_dict(lc["config"])
    tc, sc = cfg.train, cfg.schedule
    if tc.threads:
        torch.set_num_threads(tc.threads)
    # train_s: seconds spent in training steps (evaluation and checkpoints excluded), so that
    # tokens / train_s is the run's training throughput, resumes included
    state = {"step": 0, "tokens": 0, "epoch": 0, "batch_in_epoch": 0, "train_s": 0.0}
    history: list[dict] = []
    metrics: dict = {}
    resume = ctx.resume_dir(lc.get("run_dir"))
    if resume:
        meta = ckpt.read_meta(resume)
        state.update(meta["state"])
        history, metrics = meta.get("history", []), dict(meta.get("metrics", {}))
    # where the data resumes is known now: its first batch streams in while the model is built
    data = FirstBatchEarly(_stream(ctx, state, tc.batch_size, cfg.data.shuffle_buffer, tc.seed))

    torch.manual_seed(tc.seed)  # identical init on every rank (DDP also broadcasts rank 0's)
    task = build_task(cfg, lc)
    raw = task.model
    max_steps = lc.get("max_steps") or sc.max_steps
    eval_every = lc.get("eval_every", tc.eval_every)
    plan = task.plan(cfg, lc)  # which parameters train, at which LR
    if resume:
        ckpt.load_weights(raw, resume)
    best = metrics.get(cfg.sweep.metric) if task.name == "cls" else None  # what a checkpoint must beat
    raw.train()  # from_pretrained hands back a model in eval mode (dropout off)
    model = ctx.prepare(raw)
    optimizer = make_optimizer(plan, cfg, ctx.device)
    if resume:
        ckpt.load_optimizer(optimizer, resume)
        cleanup(resume)

    amp = autocast(tc.precision, ctx.device)
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    # compiling fuses the memory-bound ops (GELU, LayerNorm, log-softmax of the V-wide output)
    # that dominate small models on CPU; evaluation stays eager (no second compile)
    loss_fn = torch.compile(task.loss) if tc.compile else task.loss
    loss_sum = torch.zeros((), device=ctx.device)
    items = torch.zeros((), device=ctx.device)   # what the loss averages over (masked tokens for MLM)
    seen = torch.zeros((), device=ctx.device)    # what throughput counts (every input token / example)
    steps_in_window, t_window, data_wait = 0, time.perf_counter(), 0.0
    tb = tensorboard_writer(lc.get("run_dir"), ctx.rank)

    while state["step"] < max_steps:
        step = state["step"]
        # dropout's random stream is a function of (seed, rank, step): it differs per rank, and a
        # resumed run draws what the uninterrupted one would have at the same step
        torch.manual_seed((tc.seed * 1_000_003 + ctx.rank) * 1_000_003 + step)
        mult = lr_factor(step, sc.warmup_steps, max_steps, sc.min_lr_ratio, sc.decay)
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * mult
        for micro in range(tc.grad_accum):
            t_data = time.perf_counter()
            batch = next(data)
            data_wait += time.perf_counter() - t_data  # time the step waited for its batch
            if tc.trace_file:
                trace(tc.trace_file, step + 1, state, batch, ctx.rank)
            # gradients are all-reduced once per optimizer step, on the last micro-batch
            sync = micro == tc.grad_accum - 1 or ctx.world == 1
            if hasattr(task, "reseed"):  # masked LM: this micro-batch's masks, the same after a resume
                task.reseed(tc.seed, ctx.rank, step, micro)
            with (nullcontext() if sync else model.no_sync()), amp:
                total, n = loss_fn(model, batch)
                (total / n.clamp_min(1) / tc.grad_accum).backward()
            loss_sum += total.detach().float()
            items += n
            seen += task.seen(batch) if hasattr(task, "seen") else n
        for until, params in plan.frozen_until:  # gradual unfreezing: frozen groups drop grads
            if step < until:
                for p in params:
                    p.grad = None
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for p in trainable if p.grad is not None], cfg.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] = s = step + 1
        steps_in_window += 1

        last = s == max_steps
        do_log = s % tc.log_every == 0 or last
        do_eval = (eval_every and s % eval_every == 0) or last
        # fine-tuning checkpoints exactly at evaluations: each Tune report carries the metric
        do_ckpt = do_eval if task.name == "cls" else (s % cfg.checkpoint.every_steps == 0 or last)
        if do_log or do_eval or do_ckpt:
            window = ctx.all_reduce(torch.stack([loss_sum, items.float(), seen.float()]))
            loss_sum.zero_(), items.zero_(), seen.zero_()
            if window[1] > 0:
                train_loss = (window[0] / window[1]).item()
                if not math.isfinite(train_loss):
                    raise DivergenceError(f"loss is {train_loss} at step {s} (optim.lr={cfg.optim.lr}): "
                                          f"training diverged")
                elapsed = time.perf_counter() - t_window
                state["tokens"] += int(window[2].item())
                state["train_s"] = state.get("train_s", 0.0) + elapsed
                metrics.update(step=s, max_steps=max_steps, epoch=state["epoch"], train_loss=train_loss,
                               lr=optimizer.param_groups[0]["lr"], **{task.unit: state["tokens"]},
                               **{f"{task.unit}_per_s": window[2].item() / max(elapsed, 1e-9)},
                               data_wait_frac=data_wait / max(elapsed, 1e-9), train_s=state["train_s"])
                eta = (max_steps - s) * elapsed / max(steps_in_window, 1)
                if ctx.rank == 0:
                    say(f"[{task.name}] step {s}/{max_steps} loss {train_loss:.4f} "
                        f"{metrics[f'{task.unit}_per_s']:.0f} {task.unit}/s eta {eta:.0f}s")
        if do_eval:
            metrics.update(evaluate(task, model, ctx, cfg, amp))
            if ctx.rank == 0:
                say(f"[{task.name}] step {s} " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                                         if k.startswith("val_")))
        if do_log or do_eval:
            history.append(dict(metrics))
            if tb:
                log_scalars(tb, metrics, s)
        if do_eval or do_ckpt:
            d = None
            # fine-tuning keeps its best checkpoint only (Tune / Train drop the rest): one that does
            # not improve the metric is not written at all (less disk, fewer experiment snapshots)
            value = metrics.get(cfg.sweep.metric)
            improved = value is not None and (best is None or (value > best if cfg.sweep.mode == "max" else value < best))
            if improved:
                best = value
            if ctx.rank == 0 and (improved or task.name != "cls"):
                d = tempfile.mkdtemp(prefix="ptft-ckpt-")
                meta = {"format": 1, "task": task.name, "state": dict(state), "history": history,
                        "metrics": dict(metrics), "config": cfg.to_dict(),
                        **{k: lc.get(k) for k in ("vocab_size", "pad_id", "eot_id", "task_info",
                                                  "init_from", "lineage", "objective")}}
                ckpt.fill_dir(d, raw, meta, lc["tokenizer"], optimizer)
            ctx.report(dict(metrics), d)
            cleanup(d)
        if do_log or do_eval or do_ckpt:
            steps_in_window, t_window, data_wait = 0, time.perf_counter(), 0.0
    if tb:
        tb.close()
    return {**metrics, "history": history}
