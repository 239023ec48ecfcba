"""vLLM #9471 recreated: prefill attention in float32, which the GPU cannot run on tensor cores (slow variant, CUDA)."""

import torch
import torch.nn.functional as F
from torch import nn


class PrefillAttention(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def workload():
    torch.manual_seed(0)
    q, k, v = (torch.randn(4, 16, 1024, 64, device="cuda") for _ in range(3))
    return PrefillAttention().eval(), (q, k, v)
