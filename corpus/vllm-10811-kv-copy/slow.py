"""vLLM #10811 recreated: decode attention copies the whole K/V cache into a new layout every step (slow variant)."""

import torch
import torch.nn.functional as F
from torch import nn


class DecodeAttention(nn.Module):
    def forward(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> torch.Tensor:
        # The cache is stored [batch, tokens, heads, head_dim]; attention wants [batch, heads, tokens, head_dim].
        k = k_cache.transpose(1, 2).contiguous()
        v = v_cache.transpose(1, 2).contiguous()
        return F.scaled_dot_product_attention(q, k, v)


def workload():
    torch.manual_seed(0)
    q = torch.randn(1, 8, 16, 64)
    k_cache = torch.randn(1, 2048, 8, 64)
    v_cache = torch.randn(1, 2048, 8, 64)
    return DecodeAttention().eval(), (q, k_cache, v_cache)
