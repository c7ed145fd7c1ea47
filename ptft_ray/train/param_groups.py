"""What the loop's optimizer trains: parameter groups with their own LR, and (gradual
unfreezing) the step from which each frozen group starts to train. Pretraining trains every
parameter at one LR; a fine-tuning strategy (finetune/strategies.py) builds its own."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # no torch at import: the strategy registry is read when a config loads
    from torch import nn


@dataclass
class ParamGroups:
    groups: list[tuple[list["nn.Parameter"], float]]           # (params, lr)
    frozen_until: list[tuple[int, list["nn.Parameter"]]] = field(default_factory=list)

    def rebind(self, names: dict[int, str], module) -> "ParamGroups":
        """The same groups over `module`'s current parameters: FSDP2's fully_shard replaces
        each parameter with a sharded one of the same name (names: id of the old one -> name)."""
        now = dict(module.named_parameters())

        def swap(params):
            return [now[names[id(p)]] for p in params]
        return ParamGroups([(swap(ps), lr) for ps, lr in self.groups],
                           [(until, swap(ps)) for until, ps in self.frozen_until])
