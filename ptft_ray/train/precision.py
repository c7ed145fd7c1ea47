"""The compute precision of a step, one rule for the training loop and the planner's
throughput probe (so the probe times what trials will run): parameters and optimizer state
stay fp32; bf16 is autocast's compute dtype when asked for, or on a GPU under `auto`."""
from __future__ import annotations

from contextlib import nullcontext


def uses_bf16(precision: str, device_type: str) -> bool:
    return precision == "bf16" or (precision == "auto" and device_type == "cuda")


def autocast(precision: str, device):
    """The context a training step's forward runs in."""
    import torch

    device_type = getattr(device, "type", str(device))
    return torch.autocast(device_type, dtype=torch.bfloat16) if uses_bf16(precision, device_type) else nullcontext()
