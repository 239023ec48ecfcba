"""Real-system pairs for `magneton diff` (transformers / diffusers from configs, random weights).

- GPT-2 eager attention vs SDPA;
- GPT-2 with HF's default tanh GELU (``gelu_new``: several kernels) vs the fused ``gelu_pytorch_tanh``;
- a diffusers UNet2DModel in NCHW vs channels_last (Conv2D under NCHW).
"""

from __future__ import annotations

import torch


def _gpt2(attention: str = "eager", activation: str = "gelu_new", layers: int = 2) -> tuple[torch.nn.Module, tuple]:
    """A 2-layer GPT-2 at a quarter of the default width (256): small enough for a loaded 2-core VM."""
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = GPT2Config(n_layer=layers, n_embd=256, n_head=4, use_cache=False, activation_function=activation)
        config._attn_implementation = attention
        model = GPT2LMHeadModel(config).eval()
    return model, (torch.randint(0, config.vocab_size, (1, 64), generator=torch.Generator().manual_seed(1)),)


def gpt2_eager() -> tuple[torch.nn.Module, tuple]:
    return _gpt2("eager")


def gpt2_sdpa() -> tuple[torch.nn.Module, tuple]:
    return _gpt2("sdpa")


def gpt2_gelu_new() -> tuple[torch.nn.Module, tuple]:
    return _gpt2("sdpa", "gelu_new")


def gpt2_gelu_fused() -> tuple[torch.nn.Module, tuple]:
    return _gpt2("sdpa", "gelu_pytorch_tanh")


def _unet(channels_last: bool) -> tuple[torch.nn.Module, tuple]:
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = UNet2DModel(
            sample_size=32,
            in_channels=3,
            out_channels=3,
            block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            layers_per_block=1,
            norm_num_groups=8,
        ).eval()
    sample = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    timestep = torch.tensor([10])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        sample = sample.contiguous(memory_format=torch.channels_last)
    return model, (sample, timestep)


def unet_nchw() -> tuple[torch.nn.Module, tuple]:
    return _unet(False)


def unet_channels_last() -> tuple[torch.nn.Module, tuple]:
    return _unet(True)
