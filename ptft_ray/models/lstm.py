"""The seed design's LSTM language model backbone: Embedding -> LSTM layers."""
from __future__ import annotations

import contextlib

import torch
from torch import nn


class LSTMBackbone(nn.Module):
    def __init__(self, vocab: int, emb: int, hidden: int, n_layers: int, dropout: float):
        super().__init__()
        self.out_dim = hidden
        self.tok_emb = nn.Embedding(vocab, emb)
        # one nn.LSTM per layer so strategies can freeze / unfreeze layer by layer
        self.layers = nn.ModuleList(
            nn.LSTM(emb if i == 0 else hidden, hidden, batch_first=True) for i in range(n_layers))
        self.drop = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(ids)
        # oneDNN has no bf16 LSTM on CPU: there the layers run in fp32 under autocast
        cpu_autocast = ids.device.type == "cpu" and torch.is_autocast_enabled("cpu")
        with torch.autocast("cpu", enabled=False) if cpu_autocast else contextlib.nullcontext():
            x = x.float() if cpu_autocast else x
            for layer in self.layers:
                x, _ = layer(self.drop(x))
        return x

    def layer_groups(self) -> list[list[nn.Module]]:
        return [[self.tok_emb], *[[layer] for layer in self.layers]]
