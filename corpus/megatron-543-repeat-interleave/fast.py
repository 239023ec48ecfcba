"""Megatron-LM #543 recreated: each K/V head serves its query group without being copied (fast variant)."""

import torch
from torch import nn


class GroupedQueryAttention(nn.Module):
    def __init__(self, heads: int = 16, kv_heads: int = 4, head_dim: int = 64) -> None:
        super().__init__()
        self.groups = heads // kv_heads
        self.scale = head_dim**-0.5

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, h, s, d = q.shape
        kv_heads = k.shape[1]
        # Query heads of one group are adjacent: fold them into the sequence dimension.
        grouped = q.reshape(b, kv_heads, self.groups * s, d)
        scores = (grouped @ k.transpose(-1, -2) * self.scale).view(b, kv_heads, self.groups, s, -1)
        probs = torch.softmax(scores, dim=-1).view(b, kv_heads, self.groups * s, -1)
        return (probs @ v).view(b, h, s, d)


def workload():
    torch.manual_seed(0)
    q = torch.randn(1, 16, 32, 64)  # a chunk of 32 new tokens
    k = torch.randn(1, 4, 1024, 64)
    v = torch.randn(1, 4, 1024, 64)
    return GroupedQueryAttention().eval(), (q, k, v)
