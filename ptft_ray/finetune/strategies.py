"""Fine-tuning strategies: one registered function each.

A strategy gets the classifier (our own or a Hugging Face one: both give `layer_groups()`,
parameter lists from the embeddings at the bottom to the head at the top, and `backbone`),
the fine-tune config, the base LR and the number of optimizer steps per epoch, sets
`requires_grad`, and returns ParamGroups: parameter groups with their own LR, and (gradual
unfreezing) the step from which each frozen group starts to train.

A new strategy is one function here under `@register("name")`: the name joins the registry
that config validation reads (`config.STRATEGIES`), so `finetune.strategy=name` and
`sweep.strategies=[..., name]` are accepted. This module imports no torch, so the CLI reads
the registry before any heavy import.
"""
from __future__ import annotations

from typing import Callable

from ..config import BUILTIN_STRATEGIES
from ..config import STRATEGIES as NAMES
from ..config import FinetuneConfig
from ..errors import PtftError
from ..train.param_groups import ParamGroups


STRATEGIES: dict[str, Callable] = {}


def register(name: str):
    """fn(model, ft: FinetuneConfig, lr, steps_per_epoch) -> ParamGroups, under `name`."""
    def deco(fn):
        STRATEGIES[name] = fn
        if name not in NAMES:
            NAMES.append(name)
        return fn
    return deco


def _freeze(groups: list) -> None:
    for g in groups:
        for p in g:
            p.requires_grad_(False)


@register("full")
def full(model, ft: FinetuneConfig, lr: float, steps_per_epoch: int) -> ParamGroups:
    return ParamGroups([(list(model.parameters()), lr)])


@register("linear_probe")
def linear_probe(model, ft, lr, steps_per_epoch) -> ParamGroups:
    groups = model.layer_groups()            # [..backbone groups.., head]
    _freeze(groups[:-1])
    return ParamGroups([(groups[-1], lr)])


@register("partial")
def partial(model, ft, lr, steps_per_epoch) -> ParamGroups:
    groups = model.layer_groups()
    k = min(ft.unfreeze_top_k, len(groups) - 1)
    _freeze(groups[:len(groups) - 1 - k])
    return ParamGroups([([p for g in groups[len(groups) - 1 - k:] for p in g], lr)])


@register("lora")
def lora(model, ft, lr, steps_per_epoch) -> ParamGroups:
    from .lora import apply_lora

    groups = model.layer_groups()
    _freeze(groups[:-1])
    if apply_lora(model.backbone, ft) == 0:
        raise PtftError(f"strategy 'lora' needs linear layers in the backbone; "
                        f"{type(model.backbone).__name__} has none (use full, partial or linear_probe)")
    for p in groups[-1]:  # peft froze everything in the backbone but adapters (BERT's pooler is head)
        p.requires_grad_(True)
    adapters = [p for n, p in model.backbone.named_parameters() if "lora_" in n]
    return ParamGroups([(adapters + groups[-1], lr)])


@register("discriminative_lr")
def discriminative_lr(model, ft, lr, steps_per_epoch) -> ParamGroups:
    groups = model.layer_groups()
    top = len(groups) - 1
    # head gets lr, the group below lr * decay, then lr * decay^2, ... (ULMFiT uses 1/2.6)
    return ParamGroups([(g, lr * ft.lr_decay ** (top - i)) for i, g in enumerate(groups)])


@register("gradual_unfreeze")
def gradual_unfreeze(model, ft, lr, steps_per_epoch) -> ParamGroups:
    groups = model.layer_groups()
    every = ft.unfreeze_every or steps_per_epoch
    top = len(groups) - 1
    # the head trains from step 0, the top backbone group from `every`, the next from 2*every...
    frozen = [((top - i) * every, g) for i, g in enumerate(groups) if i < top]
    return ParamGroups([(list(model.parameters()), lr)], frozen_until=frozen)


assert tuple(STRATEGIES)[:len(BUILTIN_STRATEGIES)] == BUILTIN_STRATEGIES, \
    "config.BUILTIN_STRATEGIES must name the strategies registered here, in order"
