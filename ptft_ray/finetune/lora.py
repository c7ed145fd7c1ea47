"""Low-rank adapters on nn.Linear layers: y = W x + (alpha / r) * B A x, merged on export."""
from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base, self.scale = base, alpha / rank
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))  # starts as a no-op
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scale

    def merged(self) -> nn.Linear:
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * (self.lora_B @ self.lora_A))
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def apply_lora(module: nn.Module, rank: int, alpha: float) -> int:
    """Wrap every nn.Linear below `module` in place; returns how many were wrapped."""
    n = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, LoRALinear(child, rank, alpha))
            n += 1
        elif not isinstance(child, LoRALinear):
            n += apply_lora(child, rank, alpha)
    return n


def merge_lora(module: nn.Module) -> int:
    """Replace every LoRALinear below `module` by its merged nn.Linear; returns the count."""
    n = 0
    for name, child in list(module.named_children()):
        if isinstance(child, LoRALinear):
            setattr(module, name, child.merged())
            n += 1
        else:
            n += merge_lora(child)
    return n

