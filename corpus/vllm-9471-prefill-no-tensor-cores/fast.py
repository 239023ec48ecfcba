"""vLLM #9471 recreated: attention in half precision on tensor cores, float32 outside it (fast variant, CUDA)."""

import torch
import torch.nn.functional as F
from torch import nn


class PrefillAttention(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = F.scaled_dot_product_attention(q.half(), k.half(), v.half(), is_causal=True)
        return out.float()


def workload():
    torch.manual_seed(0)
    q, k, v = (torch.randn(4, 16, 1024, 64, device="cuda") for _ in range(3))
    return PrefillAttention().eval(), (q, k, v)
