"""transformers Llama with SDPA attention, K/V heads shared by their query group (fast variant).

A Llama built from a config with random weights (transformers, the ``hf`` extra).
"""

import torch
from torch import nn
from transformers import LlamaConfig, LlamaModel

CONFIG = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=8,
    num_key_value_heads=2,
    vocab_size=1000,
    max_position_embeddings=1024,
)


class Prefill(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = LlamaModel(LlamaConfig(**CONFIG, attn_implementation="sdpa"))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids).last_hidden_state


def workload():
    torch.manual_seed(0)
    return Prefill().eval(), (torch.randint(0, CONFIG["vocab_size"], (1, 512)),)
