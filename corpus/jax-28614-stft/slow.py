"""JAX #28614 recreated in PyTorch: hand-rolled STFT, a full complex FFT, half of it thrown away (slow variant).

``jnp.fft.fft`` of a real signal casts it to complex and runs a complex-to-complex transform; the cast is written
out here because ``torch.fft.fft`` would otherwise take a real-input shortcut that JAX does not.
"""

import torch
from torch import nn


class Spectrogram(nn.Module):
    def __init__(self, n_fft: int = 512, hop: int = 128) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        frames = signal.unfold(-1, self.n_fft, self.hop) * self.window
        spectrum = torch.fft.fft(frames.to(torch.complex64))[..., : self.n_fft // 2 + 1]
        return spectrum.abs().transpose(-1, -2)


def workload():
    torch.manual_seed(0)
    return Spectrogram().eval(), (torch.randn(4, 16000),)
