"""The memory plan: bytes per device for parameters, gradients, optimizer state and
activations, for DDP and FSDP, with and without activation checkpointing; and the choice of
strategy, checkpointing and micro-batch that fits a device (docs/decisions.md, "Memory plan").

    parameters    fp32 master weights: P x 4 (DDP; + P x 2 autocast's bf16 weight copies on a bf16
                  GPU), P x 4 / N under FSDP + two all-gathered blocks (the one computing and the
                  one prefetched) in the compute dtype
    gradients     fp32: T x 4, + T x 4 for DDP's reduction buckets when N > 1; FSDP: T x 4 / N + one
                  unsharded block's
    optimizer     AdamW's two fp32 moments: T x 8 (/ N under FSDP)
    activations   per block s.b.h.34 bytes at 16 bits (Korthikanti et al. 2022; + 5.a.s/h where
                  the attention is not fused and keeps its s x s scores), twice that in fp32;
                  checkpointed: each block's input plus one block recomputed; plus one chunk of
                  positions' logits (models/lm_loss.py) in the compute dtype, their fp32 copy
                  and gradient

P: parameters, T: trainable parameters, N: ranks, s: sequence length, b: micro-batch, h:
hidden size, a: attention heads.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..models.lm_loss import chunk_tokens

GIB = 2 ** 30
USABLE = 0.9          # of a GPU's memory: the CUDA context and the allocator's fragmentation take the rest


@dataclass(frozen=True)
class ModelShape:
    params: int
    layers: int
    hidden: int
    heads: int
    vocab: int
    block_params: int     # one transformer block: the FSDP unit that is all-gathered at a time
    fused_attention: bool = True   # SDPA / flash: our GPT, and transformers' default attn_implementation

    @classmethod
    def of(cls, model) -> "ModelShape":
        """From a built model (on any device, the meta device included)."""
        from .parallel import blocks

        bl = blocks(model)
        conf = getattr(getattr(model, "hf", model), "config", None)
        if conf is not None:
            hidden = getattr(conf, "hidden_size", None) or getattr(conf, "n_embd")
            heads = getattr(conf, "num_attention_heads", None) or getattr(conf, "n_head")
            vocab = conf.vocab_size
        else:
            bb = getattr(model, "backbone", model)
            hidden = bb.out_dim
            heads = next((m.n_heads for m in model.modules() if hasattr(m, "n_heads")), 1)
            vocab = next(m for m in model.modules() if hasattr(m, "num_embeddings")).num_embeddings
        return cls(sum(p.numel() for p in model.parameters()), len(bl), hidden, heads, vocab,
                   max((sum(p.numel() for p in b.parameters()) for b in bl), default=0),
                   getattr(conf, "_attn_implementation", "sdpa") != "eager")


def activation_bytes(m: ModelShape, micro_batch: int, seq_len: int, bf16: bool, checkpointing: bool,
                     loss_chunk: int = 0) -> int:
    e = 2 if bf16 else 4
    sbh = seq_len * micro_batch * m.hidden
    # fused attention (SDPA) stores no s x s scores: Korthikanti's 5.a.s/h term is the unfused kernel's
    block = sbh * (34 + (0 if m.fused_attention else 5 * m.heads * seq_len / m.hidden)) * e / 2
    stored = m.layers * sbh * e + block if checkpointing else m.layers * block
    # one chunk of positions' logits lives at a time (models/lm_loss.py)
    logits = chunk_tokens(micro_batch * seq_len, m.vocab, loss_chunk) * m.vocab * (e + 4 + 4)
    return int(stored + logits)


def per_device(m: ModelShape, strategy: str, world: int, micro_batch: int, seq_len: int, bf16: bool,
               checkpointing: bool, trainable: int | None = None, loss_chunk: int = 0) -> dict:
    """{parameters, gradients, optimizer, activations, total} in bytes on one device."""
    P, T = m.params, m.params if trainable is None else trainable
    e = 2 if bf16 else 4
    if strategy == "fsdp":
        params = 4 * P / world + 2 * m.block_params * e
        grads = 4 * T / world + 4 * m.block_params
        optim = 8 * T / world
    else:
        params = 4 * P + (2 * P if bf16 else 0)
        grads = 4 * T * (2 if world > 1 else 1)
        optim = 8 * T
    out = {"parameters": int(params), "gradients": int(grads), "optimizer": int(optim),
           "activations": activation_bytes(m, micro_batch, seq_len, bf16, checkpointing, loss_chunk)}
    out["total"] = sum(out.values())
    return out


def choose(m: ModelShape, world: int, micro_batch: int, seq_len: int, bf16: bool, device_bytes: float | None,
           strategy: str = "auto", checkpointing: str = "auto", trainable: int | None = None,
           loss_chunk: int = 0) -> dict:
    """The first of DDP, DDP + checkpointing, FSDP, FSDP + checkpointing (as the settings
    allow) that fits at the configured micro-batch; else the largest micro-batch that fits
    (halving; gradient accumulation keeps the global batch). fits False: nothing does."""
    strategies = ["ddp", "fsdp"] if strategy == "auto" else [strategy]
    acs = {"auto": [False, True], "true": [True], "false": [False]}[checkpointing]
    options = [(s, a) for s in strategies for a in acs]
    budget = device_bytes * USABLE if device_bytes else None
    b, tried = micro_batch, []
    while True:
        for s, a in options:
            need = per_device(m, s, world, b, seq_len, bf16, a, trainable, loss_chunk)
            if budget is None or need["total"] <= budget:
                return _plan(s, a, b, micro_batch, need, budget, True, tried, bf16)
            tried.append(f"{s}{' + checkpointing' if a else ''} at micro-batch {b}: {need['total'] / GIB:.1f} GiB")
        if b == 1:
            s, a = options[-1]
            need = per_device(m, s, world, 1, seq_len, bf16, a, trainable, loss_chunk)
            return _plan(s, a, 1, micro_batch, need, budget, False, tried, bf16)
        b = max(1, b // 2)


def _plan(strategy, ac, b, asked, need, budget, fits, tried, sixteen) -> dict:
    first = tried[:1] + ([f"... {len(tried) - 2} more"] if len(tried) > 2 else []) + tried[1:][-1:]
    why = ("nothing fits: " + "; ".join(first) if not fits else
           "the first that fits" + (f" (over {budget / GIB:.1f} GiB: " + "; ".join(first) + ")" if tried else ""))
    return {"strategy": strategy, "activation_checkpointing": ac, "micro_batch": b,
            "grad_accum_factor": max(1, asked // b), "per_device_bytes": need,
            "device_bytes": int(budget / USABLE) if budget else None, "fits": fits, "why": why,
            "precision": "16-bit compute (bf16; fp16 + loss scaling without bf16), fp32 master weights"
                         if sixteen else "fp32"}


def table(plan: dict) -> str:
    """The plan as the lines `ptft-ray plan` prints."""
    need, have = plan["per_device_bytes"], plan["device_bytes"]
    lines = [f"memory per device ({plan['strategy']}, activation checkpointing "
             f"{'on' if plan['activation_checkpointing'] else 'off'}, micro-batch {plan['micro_batch']}, "
             f"{plan.get('precision', 'fp32')}):"]
    lines += [f"  {k:<12}{_size(v)}" for k, v in need.items()]
    lines.append(f"  {'device':<12}" + (f"{_size(have)} ({USABLE:.0%} usable): "
                                        f"{'fits' if plan['fits'] else 'DOES NOT FIT'}" if have else "    no limit (CPU)"))
    return "\n".join(lines)


def _size(n: float) -> str:
    return f"{n / GIB:8.2f} GiB" if n >= GIB else f"{n / 2 ** 20:8.1f} MiB"


def refusal(plan: dict, world: int) -> str:
    """One line: what it needs per device, what a device has, what to set."""
    need, have = plan["per_device_bytes"]["total"] / GIB, plan["device_bytes"] / GIB
    more = max(world * 2, 2)
    return (f"the model does not fit: {need:.1f} GiB per device even with FSDP, activation checkpointing and "
            f"micro-batch 1, over the {have * USABLE:.1f} GiB usable of {have:.0f} GiB; set scaling.num_workers="
            f"{more} or more (FSDP shards by the ranks), a shorter data.seq_len / finetune.max_len, or larger GPUs "
            f"(scaling.gpu_memory_gb)")


def shape_for(model_cfg, vocab: int) -> ModelShape:
    """A model's shape from its config, built on the meta device (no weights read)."""
    import torch

    with torch.device("meta"):
        if model_cfg.hf:
            from ..models.hf import HFLM, hf_config
            from ..storage import localize

            model = HFLM.skeleton(hf_config(localize(model_cfg.hf, "model.hf"))).hf
        else:
            from ..models import build_lm

            model = build_lm(model_cfg, vocab)
    return ModelShape.of(model)


def device_memory(scaling, res: dict) -> float | None:
    """A GPU's bytes: scaling.gpu_memory_gb, else read on one of the cluster's GPUs; None on
    CPUs (no limit the plan can know) or while no GPU is up."""
    if scaling.gpu_memory_gb:
        return scaling.gpu_memory_gb * GIB
    if not scaling.use_gpu or not res.get("gpus"):
        return None
    import ray

    @ray.remote(num_gpus=1, num_cpus=0)
    def total() -> int:
        import torch

        return torch.cuda.get_device_properties(0).total_memory

    return float(ray.get(total.remote(), timeout=120))


def resolve(cfg, shape: ModelShape, world: int, seq_len: int, device_bytes: float | None, say=print):
    """-> (Parallel, the config with the micro-batch that fits, the plan). Refuses, in one
    line, a model that fits no way."""
    from ..errors import PtftError
    from .precision import half
    from .spec import Parallel

    bf16 = half(cfg.train.precision, "cuda" if cfg.scaling.use_gpu else "cpu")  # bf16 or fp16: 2 bytes
    plan = choose(shape, world, cfg.train.batch_size, seq_len, bf16, device_bytes, cfg.scaling.strategy,
                  cfg.train.activation_checkpointing, loss_chunk=cfg.train.loss_chunk_tokens)
    if not plan["fits"]:
        raise PtftError(refusal(plan, world))
    if plan["micro_batch"] < cfg.train.batch_size:  # gradient accumulation keeps the global batch
        cfg = replace(cfg, train=replace(
            cfg.train, batch_size=plan["micro_batch"], grad_accum=cfg.train.grad_accum * plan["grad_accum_factor"]))
    if device_bytes:
        say(table(plan))
    return Parallel(plan["strategy"], plan["activation_checkpointing"]), cfg, plan
