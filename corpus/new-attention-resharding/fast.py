"""New case (Magneton paper): attention reads Q, K, V as strided views of the fused projection (fast variant)."""

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, dim: int = 256, heads: int = 8) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(b, s, d)


def workload():
    torch.manual_seed(0)
    # Many short sequences (a batch of queries, patches or tokens of a small model): the copies are not
    # hidden behind long-sequence attention compute.
    return SelfAttention(dim=64, heads=2).eval(), (torch.randn(512, 16, 64),)
