"""Stable Diffusion #279 recreated: TF32 for the linear layers too (fast variant, CUDA)."""

import torch
from diffusers.models.attention import BasicTransformerBlock
from torch import nn


class LatentBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = BasicTransformerBlock(dim=320, num_attention_heads=8, attention_head_dim=40)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.block(hidden_states)


def workload():
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    return LatentBlock().eval().cuda(), (torch.randn(2, 4096, 320, device="cuda"),)
