"""Magneton: find software energy waste in PyTorch programs."""

from __future__ import annotations

__version__ = "0.1.0"

from magneton.errors import MagnetonError
from magneton.workload import Workload

__all__ = ["MagnetonError", "Workload", "__version__"]
