"""A small GPT-2 from transformers (random weights, 4 layers): its hand-written GELU is visible in a report."""

from __future__ import annotations

import torch
from torch import nn


def workload() -> tuple[nn.Module, tuple[torch.Tensor]]:
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = GPT2Config(
            n_layer=4, n_embd=256, n_head=4, n_positions=128, vocab_size=8192, bos_token_id=0, eos_token_id=0
        )
        model = GPT2LMHeadModel(config).eval()
        ids = torch.randint(0, config.vocab_size, (2, 128))
    return model, (ids,)
