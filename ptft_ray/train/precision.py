"""The compute precision of a step, one rule for the training loop, the memory plan and the
planner's throughput probe (so the probe times what trials will run). Parameters and
optimizer state stay fp32 (master weights) in every case; 16 bits is autocast's compute dtype:

    fp32   no autocast
    bf16   bf16 autocast
    fp16   fp16 autocast, the loss scaled by a GradScaler (fp16's range underflows small gradients)
    auto   on a GPU: bf16 where it has bf16 (Ampere and later), else fp16; on a CPU: bf16 where
           it computes bf16 natively (AVX512-BF16 or AMX), else fp32 (docs/decisions.md)
"""
from __future__ import annotations

from contextlib import nullcontext


def cpu_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic: only there is a bf16 step faster than fp32."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def half(precision: str, device_type: str) -> bool:
    """Whether the step computes in 16 bits (what the memory plan needs to know)."""
    if precision == "auto":
        return device_type == "cuda" or (device_type == "cpu" and cpu_bf16())
    return precision in ("bf16", "fp16")


def compute_dtype(precision: str, device_type: str):
    """The autocast dtype on this device (None: fp32)."""
    import torch

    if not half(precision, device_type):
        return None
    if precision == "auto":
        cuda_fp16 = device_type == "cuda" and not torch.cuda.is_bf16_supported()
        return torch.float16 if cuda_fp16 else torch.bfloat16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(dtype, device):
    """The context a training step's forward runs in."""
    import torch

    device_type = getattr(device, "type", str(device))
    return torch.autocast(device_type, dtype=dtype) if dtype is not None else nullcontext()


def grad_scaler(dtype, device):
    """A GradScaler, enabled under fp16 only (a pass-through otherwise)."""
    import torch

    return torch.amp.GradScaler(getattr(device, "type", str(device)), enabled=dtype == torch.float16)
