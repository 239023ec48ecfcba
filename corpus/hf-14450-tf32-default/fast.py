"""transformers #14450 recreated: the same encoder with TF32 matmuls on (fast variant, CUDA)."""

import torch
from torch import nn
from transformers import BertConfig, BertModel

CONFIG = dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048, vocab_size=1000)


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = BertModel(BertConfig(**CONFIG))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids).last_hidden_state


def workload():
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    model = Encoder().eval().cuda()
    return model, (torch.randint(0, CONFIG["vocab_size"], (16, 256), device="cuda"),)
