"""diffusers #2303 recreated: diffusers Attention with the classic AttnProcessor: baddbmm, softmax, bmm (slow variant).

Built with random weights (diffusers, the ``hf`` extra).
"""

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor
from torch import nn


class SpatialAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = Attention(query_dim=128, heads=4, dim_head=32)
        self.attention.set_processor(AttnProcessor())

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.attention(hidden_states)


def workload():
    torch.manual_seed(0)
    return SpatialAttention().eval(), (torch.randn(1, 1024, 128),)
