"""Megatron-LM #543 recreated: each K/V head serves its query group without being copied (fast variant)."""

import torch
import torch.nn.functional as F
from torch import nn


class GroupedQueryAttention(nn.Module):
    def __init__(self, heads: int = 16, kv_heads: int = 4, head_dim: int = 64) -> None:
        super().__init__()
        self.groups = heads // kv_heads
        self.scale = head_dim**-0.5

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # SDPA reads each shared K/V head for its whole query group (PyTorch >= 2.5).
        return F.scaled_dot_product_attention(q, k, v, scale=self.scale, enable_gqa=True)


def workload():
    torch.manual_seed(0)
    q = torch.randn(1, 16, 32, 64)  # a chunk of 32 new tokens
    k = torch.randn(1, 4, 1024, 64)
    v = torch.randn(1, 4, 1024, 64)
    return GroupedQueryAttention().eval(), (q, k, v)
