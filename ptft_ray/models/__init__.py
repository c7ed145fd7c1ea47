"""Models know nothing of distribution: plain nn.Modules, split into backbone + head.

Our own backbones (GPT, the seed LSTM) and Hugging Face backbones (models/hf.py) offer the
same interface: forward(ids, mask) -> logits, layer_groups() -> parameter lists from the
embeddings (bottom) to the head (top), and a backbone module."""
from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..storage import localize
from .gpt import GPTBackbone
from .hf import quiet_torchao
from .lm_loss import cross_entropy_sum
from .lstm import LSTMBackbone

quiet_torchao()  # before anything imports transformers (which imports torchao)


class LanguageModel(nn.Module):
    """backbone -> Linear(vocab). GPT ties the head to the token embedding."""

    def __init__(self, backbone: nn.Module, vocab_size: int, tie: bool):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, vocab_size, bias=False)
        if tie:
            self.head.weight = backbone.tok_emb.weight

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None,
                targets: torch.Tensor | None = None, chunk: int = 0) -> torch.Tensor:
        """Logits; with `targets`, the summed cross-entropy over chunks of `chunk` positions
        (models/lm_loss.py). Causal / recurrent: trailing padding changes nothing before it."""
        hidden = self.backbone(ids)
        if targets is None:
            return self.head(hidden)
        return cross_entropy_sum(hidden, self.head, targets, chunk or targets.numel())


class Classifier(nn.Module):
    """backbone -> masked mean pool -> dropout -> Linear(n_out). n_out=1 for binary (BCE)."""

    def __init__(self, backbone: nn.Module, n_out: int, pad_id: int, dropout: float = 0.1):
        super().__init__()
        self.backbone, self.pad_id = backbone, pad_id
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.out_dim, n_out)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.backbone(ids)                                   # [B, T, D]
        if mask is None:
            mask = ids != self.pad_id
        mask = mask.unsqueeze(-1).to(h.dtype)                    # [B, T, 1]
        pooled = (h * mask).sum(1) / mask.sum(1).clamp_min(1.0)  # [B, D]
        out = self.head(self.drop(pooled))
        return out.squeeze(-1) if out.shape[-1] == 1 else out

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Bottom (embeddings) to top (head): what partial / discriminative / gradual act on."""
        return [[p for m in g for p in m.parameters()] for g in [*self.backbone.layer_groups(), [self.head]]]


def build_backbone(m: ModelConfig, vocab_size: int) -> nn.Module:
    if m.arch == "gpt":
        return GPTBackbone(vocab_size, m.d_model, m.n_layers, m.n_heads, m.d_ff or 4 * m.d_model,
                           m.max_seq_len, m.dropout)
    return LSTMBackbone(vocab_size, m.d_model, m.hidden, m.n_layers, m.dropout)


def build_lm(m: ModelConfig, vocab_size: int) -> nn.Module:
    if m.hf:
        from .hf import HFLM

        return HFLM.load(localize(m.hf, "model.hf"))
    return LanguageModel(build_backbone(m, vocab_size), vocab_size, tie=m.arch == "gpt")


def build_classifier(m: ModelConfig, labels: list[str], vocab_size: int, pad_id: int, dropout: float,
                     init_from: str | None) -> nn.Module:
    """A classifier from a pretrained source (`init_from`: our checkpoint or a Hugging Face
    directory), or randomly initialised with the same architecture (init_from None)."""
    if m.hf:
        from .hf import HFClassifier

        return HFClassifier.build(localize(init_from or m.hf, "checkpoint"), labels, pad_id, dropout, pretrained=bool(init_from))
    if init_from:
        from .weights import load_weights

        lm = build_lm(m, vocab_size)
        load_weights(lm, localize(init_from, "checkpoint"))
        backbone = lm.backbone
    else:
        backbone = build_backbone(m, vocab_size)
    n_out = 1 if len(labels) == 2 else len(labels)  # binary: one logit (BCE), as in the seed design
    return Classifier(backbone, n_out, pad_id, dropout)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
