"""A tiny MLP workload for CLI tests: captures and measures in well under a second."""

from __future__ import annotations

import torch
from torch import nn


def workload() -> tuple[nn.Module, tuple[torch.Tensor]]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)).eval()
        x = torch.randn(4, 16)
    return model, (x,)
