"""Models know nothing of distribution: plain nn.Modules, split into backbone + head."""
from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .gpt import GPTBackbone
from .lstm import LSTMBackbone


class LanguageModel(nn.Module):
    """backbone -> Linear(vocab). GPT ties the head to the token embedding."""

    def __init__(self, backbone: nn.Module, vocab_size: int, tie: bool):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, vocab_size, bias=False)
        if tie:
            self.head.weight = backbone.tok_emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(ids))


class Classifier(nn.Module):
    """backbone -> masked mean pool -> dropout -> Linear(n_out). n_out=1 for binary (BCE)."""

    def __init__(self, backbone: nn.Module, n_out: int, pad_id: int, dropout: float = 0.1):
        super().__init__()
        self.backbone, self.pad_id = backbone, pad_id
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.out_dim, n_out)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.backbone(ids)                                   # [B, T, D]
        mask = (ids != self.pad_id).unsqueeze(-1).to(h.dtype)    # [B, T, 1]
        pooled = (h * mask).sum(1) / mask.sum(1).clamp_min(1.0)  # [B, D]
        out = self.head(self.drop(pooled))
        return out.squeeze(-1) if out.shape[-1] == 1 else out

    def layer_groups(self) -> list[list[nn.Module]]:
        """Bottom (embeddings) to top (head): what partial / discriminative / gradual act on."""
        return [*self.backbone.layer_groups(), [self.head]]


def build_backbone(m: ModelConfig, vocab_size: int) -> nn.Module:
    if m.arch == "gpt":
        return GPTBackbone(vocab_size, m.d_model, m.n_layers, m.n_heads, m.d_ff or 4 * m.d_model,
                           m.max_seq_len, m.dropout)
    return LSTMBackbone(vocab_size, m.d_model, m.hidden, m.n_layers, m.dropout)


def build_lm(m: ModelConfig, vocab_size: int) -> LanguageModel:
    return LanguageModel(build_backbone(m, vocab_size), vocab_size, tie=m.arch == "gpt")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
