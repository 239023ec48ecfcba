"""New case (Magneton paper): attention reshards Q, K, V and its output through copies (slow variant)."""

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
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = q.reshape(b, s, self.heads, -1).transpose(1, 2).contiguous()
        k = k.reshape(b, s, self.heads, -1).transpose(1, 2).contiguous()
        v = v.reshape(b, s, self.heads, -1).transpose(1, 2).contiguous()
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).contiguous().reshape(b, s, d)


def workload():
    torch.manual_seed(0)
    # Many short sequences (a batch of queries, patches or tokens of a small model): the copies are not
    # hidden behind long-sequence attention compute.
    return SelfAttention(dim=64, heads=2).eval(), (torch.randn(512, 16, 64),)
