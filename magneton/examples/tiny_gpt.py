"""A tiny GPT-2-style language model in pure torch (no transformers needed).

Same structure as GPT-2 (token + position embedding, pre-LayerNorm blocks of
causal self-attention and a GELU MLP, final LayerNorm, LM head tied to the
token embedding), small enough to capture and measure in seconds. Weights and
inputs come from a fixed seed so two builds compute the same thing.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, n_embd = x.shape
        q, k, v = self.c_attn(x).split(n_embd, dim=2)
        # (B, T, C) -> (B, heads, T, head_dim), the layout SDPA expects.
        q = q.view(batch, seq, self.n_head, n_embd // self.n_head).transpose(1, 2)
        k = k.view(batch, seq, self.n_head, n_embd // self.n_head).transpose(1, 2)
        v = v.view(batch, seq, self.n_head, n_embd // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(batch, seq, n_embd)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # GPT-2 uses the tanh approximation of GELU.
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    def __init__(self, n_layer: int, n_embd: int, n_head: int, vocab: int, seq: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(seq, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as in GPT-2

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(positions)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def build_tiny_gpt(
    n_layer: int = 4,
    n_embd: int = 256,
    n_head: int = 4,
    vocab: int = 1024,
    seq: int = 128,
    batch: int = 4,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> tuple[nn.Module, tuple[torch.Tensor]]:
    """An eval-mode TinyGPT on ``device`` and a (batch, seq) tensor of token ids for it."""
    # fork_rng(devices=[]) keeps the caller's CPU RNG untouched without initialising CUDA.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyGPT(n_layer, n_embd, n_head, vocab, seq).eval()
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab, (batch, seq), generator=generator)
    return model.to(device), (input_ids.to(device),)


def workload() -> tuple[Any, tuple[torch.Tensor]]:
    """Target for ``magneton analyze magneton.examples.tiny_gpt:workload`` (CPU, default sizes)."""
    return build_tiny_gpt()


def train_workload(foreach: bool | None = None) -> Any:
    """Target for ``magneton analyze magneton.examples.tiny_gpt:train_workload``: one AdamW training step.

    A small model (2 layers, 64 wide, sequence 32) so a whole step captures and measures in seconds;
    next-token cross-entropy on the example ids.
    """
    from magneton.workload import TrainStep

    model, (input_ids,) = build_tiny_gpt(n_layer=2, n_embd=64, n_head=4, vocab=256, seq=32, batch=2)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=foreach)
    labels = input_ids[:, 1:]

    def next_token_loss(logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels.reshape(-1))

    return TrainStep(model, (input_ids,), next_token_loss, optimizer=optimizer)
