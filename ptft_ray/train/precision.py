"""The compute precision of a step, one rule for the training loop, the memory plan and the
planner's throughput probe (so the probe times what trials will run). Parameters and
optimizer state stay fp32 (master weights) in every case; 16 bits is autocast's compute dtype:

    fp32   no autocast
    bf16   bf16 autocast
    fp16   fp16 autocast, the loss scaled by a GradScaler (fp16's range underflows small gradients)
    auto   on a GPU: bf16 where it has bf16 (Ampere and later), else fp16; on a CPU: fp32
"""
from __future__ import annotations

from contextlib import nullcontext


def half(precision: str, device_type: str) -> bool:
    """Whether the step computes in 16 bits (what the memory plan needs to know)."""
    return precision in ("bf16", "fp16") or (precision == "auto" and device_type == "cuda")


def compute_dtype(precision: str, device_type: str):
    """The autocast dtype on this device (None: fp32)."""
    import torch

    if not half(precision, device_type):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
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
