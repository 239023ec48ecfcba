"""New case (Magneton paper): GPT-2's default "gelu_new" runs the tanh GELU as five elementwise kernels (slow variant).

A GPT-2 built from a config with random weights (transformers, the ``hf`` extra).
"""

import torch
from torch import nn
from transformers import GPT2Config, GPT2Model

CONFIG = dict(
    n_layer=2, n_embd=128, n_inner=2048, n_head=4, n_positions=256, vocab_size=1000, bos_token_id=0, eos_token_id=0
)


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = GPT2Model(GPT2Config(**CONFIG, activation_function="gelu_new"))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids).last_hidden_state


def workload():
    torch.manual_seed(0)
    return Encoder().eval(), (torch.randint(0, CONFIG["vocab_size"], (1, 128)),)
