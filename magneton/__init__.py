"""Magneton: find software energy waste in PyTorch programs.

``magneton.analyze(model, args)`` profiles a call and returns a typed
:class:`~magneton.report.model.Report`; ``magneton.load_report(path)`` reads one back.
Importing ``magneton`` imports neither torch nor rich: the API loads them on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from magneton.errors import MagnetonError
from magneton.workload import Workload

if TYPE_CHECKING:
    from magneton.api import analyze, load_report
    from magneton.provenance import EnergyProvenance
    from magneton.report.model import Report

_LAZY = {
    "analyze": "magneton.api",
    "load_report": "magneton.api",
    "Report": "magneton.report.model",
    "EnergyProvenance": "magneton.provenance",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'magneton' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


__all__ = ["EnergyProvenance", "MagnetonError", "Report", "Workload", "__version__", "analyze", "load_report"]
