"""What configuration rules see: the analysed workload's device and the torch settings it ran with."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from magneton.rules.graphview import GraphView


@dataclass(frozen=True)
class RuntimeEnv:
    view: GraphView
    device: str  # "cpu", "cuda:0", ...
    cuda_capability: tuple[int, int] | None  # (8, 0) on an A100; None off CUDA
    float32_matmul_precision: str  # torch.get_float32_matmul_precision(): highest | high | medium
    cuda_matmul_allow_tf32: bool
    cudnn_allow_tf32: bool
    cudnn_benchmark: bool
    num_threads: int

    @classmethod
    def current(cls, view: GraphView, **overrides: Any) -> RuntimeEnv:
        """The settings of this process now (Magneton changes none of them)."""
        import torch

        device = view.graph.device
        capability = None
        if device.startswith("cuda") and torch.cuda.is_available():
            capability = tuple(torch.cuda.get_device_capability(torch.device(device)))
        env = cls(
            view=view,
            device=device,
            cuda_capability=capability,  # type: ignore[arg-type]
            float32_matmul_precision=torch.get_float32_matmul_precision(),
            cuda_matmul_allow_tf32=bool(torch.backends.cuda.matmul.allow_tf32),
            cudnn_allow_tf32=bool(torch.backends.cudnn.allow_tf32),
            cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
            num_threads=torch.get_num_threads(),
        )
        return replace(env, **overrides) if overrides else env

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")


__all__ = ["RuntimeEnv"]
