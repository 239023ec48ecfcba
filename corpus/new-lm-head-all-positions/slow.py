"""New case (Magneton paper): LM head computes logits for every position, only the last is used (slow variant).

A GPT-2 built from a config with random weights (transformers, the ``hf`` extra).
"""

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

CONFIG = dict(n_layer=2, n_embd=128, n_head=4, n_positions=512, vocab_size=16000, bos_token_id=0, eos_token_id=0)
ACTIVATION = "gelu_pytorch_tanh"  # the fused tanh-GELU in both variants: this case is about the LM head only


class NextTokenLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = GPT2LMHeadModel(GPT2Config(**CONFIG, activation_function=ACTIVATION))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        logits = self.model(input_ids).logits
        return logits[:, -1]


def workload():
    torch.manual_seed(0)
    return NextTokenLogits().eval(), (torch.randint(0, CONFIG["vocab_size"], (1, 128)),)
