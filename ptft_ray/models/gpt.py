"""A small GPT-style Transformer backbone: pre-LN blocks, causal SDPA attention."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.feed import flops_per_token


class Attention(nn.Module):
    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)
        # [B, T, D] -> [B, H, T, D/H]
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    def __init__(self, d: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, n_heads, dropout)
        self.fc, self.fc_out = nn.Linear(d, d_ff), nn.Linear(d_ff, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.fc_out(F.gelu(self.fc(self.ln2(x)))))


class GPTBackbone(nn.Module):
    def __init__(self, vocab: int, d: int, n_layers: int, n_heads: int, d_ff: int,
                 max_seq_len: int, dropout: float):
        super().__init__()
        self.max_seq_len, self.out_dim = max_seq_len, d
        self.tok_emb = nn.Embedding(vocab, d)
        self.pos_emb = nn.Embedding(max_seq_len, d)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.apply(self._init)
        for b in self.blocks:  # GPT-2: scale residual projections by 1/sqrt(2 * n_layers)
            for p in (b.attn.proj.weight, b.fc_out.weight):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]
        if T > self.max_seq_len:
            raise ValueError(f"sequence of {T} tokens is over max_seq_len={self.max_seq_len}")
        x = self.drop(self.tok_emb(ids) + self.pos_emb(torch.arange(T, device=ids.device)))
        for b in self.blocks:
            x = b(x)
        return self.ln_f(x)

    def layer_groups(self) -> list[list[nn.Module]]:
        # the final LayerNorm belongs with the top block
        groups = [[self.tok_emb, self.pos_emb], *[[b] for b in self.blocks]]
        groups[-1].append(self.ln_f)
        return groups

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token: 6 * N (non-embedding params) + attention 6 * L * T * D."""
        n = sum(p.numel() for b in self.blocks for p in b.parameters())
        return flops_per_token(n, len(self.blocks), self.out_dim, seq_len)
