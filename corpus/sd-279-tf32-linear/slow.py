"""Stable Diffusion #279 recreated: convolutions get TF32 by default but the linear layers do not (slow variant, CUDA).

A diffusers transformer block (attention + GEGLU feed-forward) with random weights (the ``hf`` extra).
"""

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
    torch.backends.cudnn.allow_tf32 = True  # cuDNN's default: convolutions use TF32
    torch.backends.cuda.matmul.allow_tf32 = False  # cuBLAS' default: linear layers do not
    torch.manual_seed(0)
    return LatentBlock().eval().cuda(), (torch.randn(2, 4096, 320, device="cuda"),)
