"""New case (Magneton paper): the same tanh GELU as one fused kernel, "gelu_pytorch_tanh" (fast variant)."""

import torch
from torch import nn
from transformers import GPT2Config, GPT2Model

CONFIG = dict(
    n_layer=2, n_embd=128, n_inner=2048, n_head=4, n_positions=256, vocab_size=1000, bos_token_id=0, eos_token_id=0
)


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = GPT2Model(GPT2Config(**CONFIG, activation_function="gelu_pytorch_tanh"))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids).last_hidden_state


def workload():
    torch.manual_seed(0)
    return Encoder().eval(), (torch.randint(0, CONFIG["vocab_size"], (1, 128)),)
