"""Capture: a workload's operator graph with torch.fx, each node tied to its source line.

``strategies`` chooses how (export, make_fx, symbolic_trace, piecewise),
``annotate`` fills each node (op, shapes, aliasing, source frame),
``torch_compat`` holds every private torch API used.
"""

from __future__ import annotations

from magneton.capture.annotate import annotate, is_profiled, run_piece
from magneton.capture.strategies import capture, workload_device
from magneton.capture.values import InputSnapshot, tensor_leaves

__all__ = ["InputSnapshot", "annotate", "capture", "is_profiled", "run_piece", "tensor_leaves", "workload_device"]
