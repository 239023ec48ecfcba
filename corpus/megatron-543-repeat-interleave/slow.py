"""Megatron-LM #543 recreated: grouped-query attention that materialises K/V for every query head (slow variant)."""

import torch
from torch import nn


class GroupedQueryAttention(nn.Module):
    def __init__(self, heads: int = 16, kv_heads: int = 4, head_dim: int = 64) -> None:
        super().__init__()
        self.groups = heads // kv_heads
        self.scale = head_dim**-0.5

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        k = k.repeat_interleave(self.groups, dim=1)
        v = v.repeat_interleave(self.groups, dim=1)
        scores = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
        return scores @ v


def workload():
    torch.manual_seed(0)
    q = torch.randn(1, 16, 32, 64)  # a chunk of 32 new tokens
    k = torch.randn(1, 4, 1024, 64)
    v = torch.randn(1, 4, 1024, 64)
    return GroupedQueryAttention().eval(), (q, k, v)
