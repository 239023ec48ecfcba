"""New case (Magneton paper): prefill with transformers' eager attention (matmul, softmax, matmul) (slow variant).

A GPT-2 built from a config with random weights (transformers, the ``hf`` extra).
"""

import torch
from torch import nn
from transformers import GPT2Config, GPT2Model

CONFIG = dict(n_layer=2, n_embd=128, n_head=4, n_positions=1024, vocab_size=1000, bos_token_id=0, eos_token_id=0)
ACTIVATION = "gelu_pytorch_tanh"  # the fused tanh-GELU in both variants: this case is about attention only


class Prefill(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = GPT2Model(GPT2Config(**CONFIG, attn_implementation="eager", activation_function=ACTIVATION))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids).last_hidden_state


def workload():
    torch.manual_seed(0)
    return Prefill().eval(), (torch.randint(0, CONFIG["vocab_size"], (1, 512)),)
