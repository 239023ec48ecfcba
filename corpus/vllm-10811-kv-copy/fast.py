"""vLLM #10811 recreated: attention reads the K/V cache through strided views, no copy (fast variant)."""

import torch
import torch.nn.functional as F
from torch import nn


class DecodeAttention(nn.Module):
    def forward(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> torch.Tensor:
        # The cache is stored [batch, tokens, heads, head_dim]; attention accepts the transposed views as they are.
        k = k_cache.transpose(1, 2)
        v = v_cache.transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v)


def workload():
    torch.manual_seed(0)
    q = torch.randn(1, 8, 16, 64)
    k_cache = torch.randn(1, 2048, 8, 64)
    v_cache = torch.randn(1, 2048, 8, 64)
    return DecodeAttention().eval(), (q, k_cache, v_cache)
