"""Fine-tuning strategies: one registered function each.

A strategy gets the classifier (backbone + head), the fine-tune config, the base LR and
the number of optimizer steps per epoch, sets `requires_grad`, and returns a Plan:
parameter groups with their own LR, and (gradual unfreezing) the step from which each
frozen group starts to train. Layer groups run bottom (embeddings) to top (head).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from ..config import FinetuneConfig
from ..errors import PtftError
from .lora import apply_lora


@dataclass
class Plan:
    groups: list[tuple[list[nn.Parameter], float]]           # (params, lr)
    frozen_until: list[tuple[int, list[nn.Parameter]]] = field(default_factory=list)


STRATEGIES: dict[str, Callable] = {}


def register(name: str):
    def deco(fn):
        STRATEGIES[name] = fn
        return fn
    return deco


def params_of(modules: list[nn.Module]) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters()]


def _freeze(modules: list[nn.Module]) -> None:
    for p in params_of(modules):
        p.requires_grad_(False)


@register("full")
def full(model, ft: FinetuneConfig, lr: float, steps_per_epoch: int) -> Plan:
    return Plan([(list(model.parameters()), lr)])


@register("linear_probe")
def linear_probe(model, ft, lr, steps_per_epoch) -> Plan:
    _freeze([model.backbone])
    return Plan([(list(model.head.parameters()), lr)])


@register("partial")
def partial(model, ft, lr, steps_per_epoch) -> Plan:
    groups = model.layer_groups()            # [..backbone groups.., [head]]
    k = min(ft.unfreeze_top_k, len(groups) - 1)
    _freeze([m for g in groups[:len(groups) - 1 - k] for m in g])
    return Plan([(params_of([m for g in groups[len(groups) - 1 - k:] for m in g]), lr)])


@register("lora")
def lora(model, ft, lr, steps_per_epoch) -> Plan:
    _freeze([model.backbone])
    if apply_lora(model.backbone, ft.lora_rank, ft.lora_alpha) == 0:
        raise PtftError(f"strategy 'lora' needs linear layers in the backbone; "
                        f"{type(model.backbone).__name__} has none (use full, partial or linear_probe)")
    adapters = [p for n, p in model.backbone.named_parameters() if "lora_" in n]
    return Plan([(adapters + list(model.head.parameters()), lr)])


@register("discriminative_lr")
def discriminative_lr(model, ft, lr, steps_per_epoch) -> Plan:
    groups = model.layer_groups()
    top = len(groups) - 1
    # head gets lr, the group below lr * decay, then lr * decay^2, ... (ULMFiT uses 1/2.6)
    return Plan([(params_of(g), lr * ft.lr_decay ** (top - i)) for i, g in enumerate(groups)])


@register("gradual_unfreeze")
def gradual_unfreeze(model, ft, lr, steps_per_epoch) -> Plan:
    groups = model.layer_groups()
    every = ft.unfreeze_every or steps_per_epoch
    top = len(groups) - 1
    # the head trains from step 0, the top backbone group from `every`, the next from 2*every...
    frozen = [((top - i) * every, params_of(g)) for i, g in enumerate(groups) if i < top]
    return Plan([(list(model.parameters()), lr)], frozen_until=frozen)
