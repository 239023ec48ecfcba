"""diffusers #2303 recreated: the same block with AttnProcessor2_0 (scaled_dot_product_attention) (fast variant)."""

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn


class SpatialAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = Attention(query_dim=128, heads=4, dim_head=32)
        self.attention.set_processor(AttnProcessor2_0())

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.attention(hidden_states)


def workload():
    torch.manual_seed(0)
    return SpatialAttention().eval(), (torch.randn(1, 1024, 128),)
