"""The Transformer encoder that maps data tokens plus weight tokens to output tokens (Sec. 3.3).

Pre-norm blocks, `x + Attn(LN(x))` then `x + FF(LN(x))`, no final LayerNorm; q/k/v projections
without bias, output projection with bias, GELU feed-forward. Attention runs through
`F.scaled_dot_product_attention`; `naive_attention` is the plain reference (benchmarks, maps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def naive_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d)) v, spelled out; returns (output, attention (B, heads, Nq, Nk))."""
    scores = query @ key.transpose(-2, -1) * query.shape[-1] ** -0.5
    attention = scores.softmax(dim=-1)
    return attention @ value, attention


class Attention(nn.Module):
    """Multi-head self-attention: q/k/v projections without bias, output projection with bias."""

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        self.to_qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, dim)
        self.use_sdpa = True  # False: the naive reference path

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, count, _ = tokens.shape
        qkv = self.to_qkv(tokens).view(batch, count, 3, self.heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        if self.use_sdpa:
            mixed = F.scaled_dot_product_attention(query, key, value)
        else:
            mixed = naive_attention(query, key, value)[0]
        return self.to_out(mixed.transpose(1, 2).reshape(batch, count, -1))

    def forward_with_attention(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """forward through `naive_attention`; also returns the attention (B, heads, N, N)."""
        batch, count, _ = tokens.shape
        qkv = self.to_qkv(tokens).view(batch, count, 3, self.heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        mixed, attention = naive_attention(query, key, value)
        return self.to_out(mixed.transpose(1, 2).reshape(batch, count, -1)), attention


class FeedForward(nn.Sequential):
    """Linear(dim -> ff_dim), GELU, Linear(ff_dim -> dim)."""

    def __init__(self, dim: int, ff_dim: int):
        super().__init__(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))


class Block(nn.Module):
    """One pre-norm Transformer block."""

    def __init__(self, dim: int, heads: int, head_dim: int, ff_dim: int):
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = Attention(dim, heads, head_dim)
        self.ff_norm = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, ff_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.attention(self.attention_norm(tokens))
        return tokens + self.ff(self.ff_norm(tokens))

    def forward_with_attention(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """forward, plus this block's attention probabilities (B, heads, N, N)."""
        mixed, attention = self.attention.forward_with_attention(self.attention_norm(tokens))
        tokens = tokens + mixed
        return tokens + self.ff(self.ff_norm(tokens)), attention


class TransformerEncoder(nn.Module):
    """A stack of `depth` pre-norm blocks with no final LayerNorm."""

    def __init__(self, dim: int, depth: int, heads: int, head_dim: int, ff_dim: int):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, head_dim, ff_dim) for _ in range(depth))

    def set_reference_attention(self, naive: bool) -> None:
        for block in self.blocks:
            block.attention.use_sdpa = not naive

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) -> (B, N, dim)."""
        for block in self.blocks:
            tokens = block(tokens)
        return tokens

    def forward_with_last_attention(
        self, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, dim) -> forward's output (B, N, dim) and the last block's attention
        probabilities (B, heads, N, N), that block computed with `naive_attention`."""
        *leading, last = self.blocks
        for block in leading:
            tokens = block(tokens)
        return last.forward_with_attention(tokens)
