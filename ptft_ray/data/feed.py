"""Can Ray Data feed the trainers? The corpus's own tokenize + pack rate per CPU, timed on the
driver on a sample of its documents (the same functions the stream's map tasks run), against
the tokens/s the model is expected to train at on a GPU:

    expected tokens/s per GPU = MFU x peak FLOP/s / training FLOPs per token
    CPUs per GPU the feed needs = expected tokens/s per GPU / tokenize + pack tokens/s per CPU

MFU = 0.4 is an assumption (what well-tuned dense training reaches on A100/H100), not a
measurement; the peak is the GPU's dense bf16 figure (`scaling.gpu_tflops`, or the table
below by the accelerator Ray reports). docs/decisions.md, "Feeding the GPUs".
"""
from __future__ import annotations

import math
import time

from .packing import pack

MFU = 0.4
# dense bf16 / fp16 tensor TFLOP/s from NVIDIA's datasheets (no sparsity)
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
               "V100": 125.0, "T4": 65.0}


def rate_per_cpu(texts: list[str], tok, block: int, min_s: float = 0.5) -> float:
    """Tokens (padding excluded) per CPU-second through tokenize + pack, on `texts`: CPU time
    of this process, so a tokenizer's own threads count as the CPUs they use."""
    tokens, start = 0, time.process_time()
    while True:
        for i in range(0, len(texts), 64):
            blocks = pack(tok.encode_batch(texts[i:i + 64]), tok.eot_id, tok.pad_id, block)
            tokens += int((blocks != tok.pad_id).sum())
        spent = time.process_time() - start
        if spent >= min_s:
            return tokens / spent


def flops_per_token(params: int, layers: int, hidden: int, seq_len: int) -> int:
    """Training FLOPs a token: 6 per parameter (forward + backward) + attention's 6.L.s.h."""
    return 6 * params + 6 * layers * seq_len * hidden


def plan(per_cpu: float, flops: int, gpus: float, free_cpus: float, tflops: float | None) -> dict:
    """The feed's verdict. gpus: GPUs training; free_cpus: CPUs the workers leave to Ray Data;
    tflops: a GPU's peak (None: unknown, or CPU training)."""
    out = {"tokenize_pack_tokens_per_s_per_cpu": round(per_cpu), "cpus_free_for_data": free_cpus}
    if not gpus or not tflops:
        out["line"] = (f"corpus feed: tokenize + pack {per_cpu:,.0f} tokens/s per CPU"
                       + ("" if not gpus else "; GPU peak unknown (set scaling.gpu_tflops) so its need is not sized"))
        return out
    per_gpu = MFU * tflops * 1e12 / flops
    need = per_gpu / per_cpu
    have = free_cpus / gpus
    out.update(expected_tokens_per_s_per_gpu=round(per_gpu), assumed=f"MFU {MFU:.0%} of {tflops:g} TFLOP/s",
               cpus_per_gpu_needed=round(need, 2), cpus_per_gpu_free=round(have, 2), enough=have >= need)
    out["line"] = (f"corpus feed: the model is expected at {per_gpu:,.0f} tokens/s per GPU ({out['assumed']}); "
                   f"tokenize + pack runs {per_cpu:,.0f} tokens/s per CPU, so each GPU needs "
                   f"{math.ceil(need * 10) / 10:g} CPUs for Ray Data; this cluster leaves {have:.1f}"
                   + ("" if have >= need else " (the GPUs will wait for data: pre-tokenize the corpus, or add CPUs)"))
    return out


def gpu_tflops(setting: float) -> float | None:
    """scaling.gpu_tflops, else the table's figure for the accelerator Ray reports."""
    if setting:
        return setting
    import ray

    kinds = [k.split(":", 1)[1] for k in ray.cluster_resources() if k.startswith("accelerator_type:")]
    for kind in kinds:  # "A100", "A100-80G"; an A10G is not an A10 (set scaling.gpu_tflops)
        for name, tf in PEAK_TFLOPS.items():
            if kind.upper() == name or kind.upper().startswith(name + "-"):
                return tf
    return None
