"""LoRA / DoRA adapters through `peft`, for our own backbones and Hugging Face ones alike.

Adapters go on every linear layer of the backbone (y = W x + (alpha / r) * B A x; DoRA
also learns each output's magnitude), the base weights frozen. On export they are merged
into the base weights, so an exported model is a plain model of its own architecture.
"""
from __future__ import annotations

from torch import nn

from ..config import FinetuneConfig


def _linear_names(backbone: nn.Module) -> list[str]:
    from transformers.pytorch_utils import Conv1D  # GPT-2's transposed linear layer

    return [n for n, m in backbone.named_modules()
            if isinstance(m, (nn.Linear, Conv1D)) and "pooler" not in n.split(".")]


def apply_lora(backbone: nn.Module, ft: FinetuneConfig) -> int:
    """Inject adapters into every linear layer of `backbone` in place; returns how many."""
    from peft import LoraConfig, inject_adapter_in_model

    names = _linear_names(backbone)
    if not names:
        return 0
    # names are exact paths below `backbone`; peft matches a target as the whole name or a
    # '.'-separated suffix, so anchor each at the start with a regular expression
    pattern = "^(" + "|".join(n.replace(".", r"\.") for n in names) + ")$"
    inject_adapter_in_model(LoraConfig(r=ft.lora_rank, lora_alpha=ft.lora_alpha, lora_dropout=0.0,
                                       target_modules=pattern, use_dora=ft.lora_dora), backbone)
    return len(names)


def merge_lora(module: nn.Module) -> int:
    """Merge every adapter below `module` into its base layer and put the base layer back."""
    from peft.tuners.lora import LoraLayer

    n = 0
    for name, child in list(module.named_children()):
        if isinstance(child, LoraLayer):
            child.merge()
            setattr(module, name, child.get_base_layer())
            n += 1
        else:
            n += merge_lora(child)
    return n
