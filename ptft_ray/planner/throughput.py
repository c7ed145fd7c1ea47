"""Measured throughput of a checkpoint that carries none (a Hugging Face model as it is):
timed fine-tuning steps on the live cluster, in a one-CPU Ray task shaped like a CPU trial
(one torch thread), or on one GPU where the trials will use one, in the trials' precision
(train/precision.py: 16-bit autocast on a GPU under `auto`).

    tokens/s = steps x batch x seq_len / seconds   (after untimed warm-up steps)

Steps of 16 x 64 tokens are the calibration's unit; a task whose texts are longer is timed at
its own length, the same 1,024 tokens a step: attention's cost grows with the length, so a
64-token rate over-promises long texts (docs/decisions.md, "Timed at the task's length").

On a CPU, 3 steps after 1 warm-up (what the calibration's cost model was fitted on), each
timed alone and read at the median step, so one step stalled by a neighbour moves the rate
little (docs/decisions.md, "Timed at the task's length"); on a GPU a step of this shape is
milliseconds, so 5 warm-up steps, then steps until both GPU_MIN_STEPS and GPU_MIN_S are
reached: kernel launches and allocation are then a vanishing share.

A plan that cannot buy one trial of its sized shape may run one trial on all of a node's CPUs
(planner/fit_budget.py): the same model is then timed at that many torch threads too.
"""
from __future__ import annotations

import statistics
import time

BATCH, SEQ_LEN, STEPS = 16, 64, 3
GPU_WARMUP, GPU_MIN_STEPS, GPU_MIN_S = 5, 30, 2.0


def _timed_steps(model, path: str | None, vocab_size: int, pad_id: int, use_gpu: bool,
                 precision: str = "auto", seq_len: int = SEQ_LEN) -> tuple[float, str]:
    """-> (tokens/s on one thread, the dtype the step computed its logits in)."""
    rates, dtype = _timed_by_threads(model, path, vocab_size, pad_id, use_gpu, precision, seq_len, (1,))
    return rates[1], dtype


def _timed_by_threads(model, path: str | None, vocab_size: int, pad_id: int, use_gpu: bool,
                      precision: str = "auto", seq_len: int = SEQ_LEN,
                      threads: tuple[int, ...] = (1,)) -> tuple[dict[int, float], str]:
    """-> ({torch threads: tokens/s}, the dtype of the logits); one model built, timed at each
    thread count in turn on a CPU (on a GPU threads do not matter: the first count's key)."""
    import torch

    torch.set_num_threads(threads[0])
    device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
    step, tokens, seen = _step(model, path, vocab_size, pad_id, device, precision, seq_len)
    if device.type == "cpu":
        rates = {}
        for n in threads:
            torch.set_num_threads(n)
            step()  # allocations, first-call overheads (at this thread count)
            rates[n] = median_rate([_seconds(step) for _ in range(STEPS)], tokens)
        return rates, seen[0]
    for _ in range(GPU_WARMUP):  # allocations, first-call overheads, kernel selection
        step()
    torch.cuda.synchronize()
    steps, t0 = 0, time.perf_counter()
    while steps < GPU_MIN_STEPS or time.perf_counter() - t0 < GPU_MIN_S:
        step()
        steps += 1
        if steps % 10 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return {threads[0]: steps * tokens / (time.perf_counter() - t0)}, seen[0]


def _step(model, path, vocab_size: int, pad_id: int, device, precision: str, seq_len: int):
    """-> (one fine-tuning step of ~BATCH x SEQ_LEN tokens of seq_len-token rows, its tokens,
    a list the step writes its logits' dtype into)."""
    import torch

    from ..models import build_classifier
    from ..train.precision import autocast, compute_dtype

    model = build_classifier(model, ["a", "b"], vocab_size, pad_id, 0.1, path).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    g = torch.Generator().manual_seed(0)
    batch = max(1, BATCH * SEQ_LEN // seq_len)
    ids = torch.randint(5, vocab_size, (batch, seq_len), generator=g).to(device)
    mask = torch.ones_like(ids, dtype=torch.bool)
    y = torch.randint(0, 2, (batch,), generator=g).to(device)
    seen = []

    def step():
        with autocast(compute_dtype(precision, device.type), device):
            logits = model(ids, mask)
        seen[:] = [str(logits.dtype).removeprefix("torch.")]
        logits = logits.float()
        loss = (torch.nn.functional.cross_entropy(logits, y) if logits.ndim == 2
                else torch.nn.functional.binary_cross_entropy_with_logits(logits, y.float()))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, batch * seq_len, seen


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_rate(step_seconds: list[float], tokens_per_step: int) -> float:
    """Tokens/s at the median step: a step stalled by another process moves it little, where it
    moves a mean (docs/decisions.md, "Timed at the task's length")."""
    return tokens_per_step / statistics.median(step_seconds)


def measure_rate(source, use_gpu: bool = False, precision: str = "auto", seq_len: int = SEQ_LEN) -> float:
    """Training tokens/s per worker of `source` (finetune.backbones.Source), measured now in the
    precision its trials will use, at `seq_len` tokens a row (never under the calibration's 64)."""
    return measure_rates(source, use_gpu, precision, seq_len)[1]


def measure_rates(source, use_gpu: bool = False, precision: str = "auto", seq_len: int = SEQ_LEN,
                  wide: int = 1) -> dict[int, float]:
    """{torch threads: tokens/s} of `source`: one thread (a one-CPU trial), and on a CPU with
    wide > 1 also `wide` threads (one trial on that many CPUs of a node), in one Ray task that
    holds `wide` CPUs so the second timing has them to itself."""
    import ray

    from .. import tokenizer as toks

    tok = toks.from_json(source.tokenizer_json)
    threads = (1, wide) if wide > 1 and not use_gpu else (1,)
    task = ray.remote(num_cpus=threads[-1], num_gpus=1 if use_gpu else 0)(_timed_by_threads)
    rates, _ = ray.get(task.remote(source.model, source.path, tok.vocab_size, tok.pad_id, use_gpu, precision,
                                   max(SEQ_LEN, seq_len), threads))
    return {n: float(r) for n, r in rates.items()}


def measure_missing(sources: list, res: dict, precision: str = "auto", seq_len: int = 64,
                    threads: int = 1) -> dict[str, dict[int, float]]:
    """Throughput ({torch threads: tokens/s}: one, and `threads` where more) of each real
    source that carries none (a Hugging Face model as it is), and of every Hugging Face
    checkpoint: their calibration's cost model was fitted on this probe's rate, and a
    continued-pretraining rate (masked LM over a 30k-word head, DDP) is ~0.6x what the probe
    measures for the same model; a random-init twin shares its architecture's figures."""
    out: dict[str, dict[int, float]] = {}
    for s in sources:
        if s.path and (s.model.hf or not s.lineage.get("tokens_per_s_per_worker")):
            out[s.key] = measure_rates(s, use_gpu=res.get("gpus", 0) >= 1, precision=precision, seq_len=seq_len,
                                       wide=threads)
    for s in sources:
        if s.path is None and s.key not in out and out:
            out[s.key] = min(out.values(), key=lambda r: r[1])
    return out


def retime_shrunk(p: dict, info: list[dict], sources: list, res: dict, precision: str, timed_len: int) -> bool:
    """Where the plan was shrunk to fit the budget, time its rows again: at the cut length where
    it cut them under the length the probe timed (a token of a short row costs another amount:
    docs/decisions.md, "Shorter rows for more steps"), and on a CPU node of several CPUs on all
    of them too (one trial may take them all: fit_budget.shrink_widest); the rates go into
    `info`. -> whether it timed, so the plan is chosen again at these rates."""
    # several checkpoints stay side by side (fit_budget.all_cpu_rates): not timed on all CPUs
    threads, cut = node_threads(res) if len(sources) == 1 else 1, p["max_len"] < timed_len
    if not p.get("shrunk") or not (cut or threads > 1):
        return False
    again = measure_missing(sources, res, precision, p["max_len"], threads)
    if set(again) != {i["key"] for i in info}:  # a rate carried, not timed: priced as before
        return False
    for i in info:
        rates, L = again[i["key"]], p["max_len"]
        if cut:
            i["rates_by_len"] = {L: rates[1]}
            i["rate_how"] += f"; rows cut to {L} tokens timed at {rates[1]:.0f} tokens/s"
        if threads in rates:
            i["all_cpus"] = {"threads": threads, "rates_by_len": {L: rates[threads]},
                             "speedup": rates[threads] / rates[1]}
            i["rate_how"] += f"; {L}-token rows on {threads} threads {rates[threads]:.0f} tokens/s (vs {rates[1]:.0f})"
    return True


def node_threads(res: dict) -> int:
    """The torch threads one trial could have: a CPU-only cluster's largest node's CPUs."""
    return int(res.get("max_node_cpus", 1)) if not res.get("gpus") else 1
