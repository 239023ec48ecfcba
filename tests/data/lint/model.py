"""A small model with several known energy-waste patterns (the lint golden test's input)."""

import math

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.lm_head = nn.Linear(dim, 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        out = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1) @ v
        h = 0.5 * out * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (out + 0.044715 * torch.pow(out, 3.0))))
        positions = torch.arange(x.shape[1]).to(x.device)
        return self.lm_head(h + positions[None, :, None])[:, -1, :]


def count(mask: torch.Tensor) -> torch.Tensor:
    kept = (mask != 0).sum()  # magneton: ignore[MAG117]
    return kept + (mask != 0).sum(dim=0)


def topk_by_sorting(scores: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sort(scores, descending=True).values[..., :k]
