"""JAX #28614 recreated in PyTorch: torch.stft computes only the non-redundant half (fast variant)."""

import torch
from torch import nn


class Spectrogram(nn.Module):
    def __init__(self, n_fft: int = 512, hop: int = 128) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(signal, self.n_fft, self.hop, window=self.window, center=False, return_complex=True)
        return spectrum.abs()


def workload():
    torch.manual_seed(0)
    return Spectrogram().eval(), (torch.randn(4, 16000),)
