"""Where an energy number came from: measured, estimated, predicted or replayed.

Every energy-bearing object in a report (the totals, each node, each roll-up,
each region, and optionally each finding) carries one :class:`EnergyProvenance`,
so no number can sit unlabelled beside another of a different kind. It lives
below ``findings`` and ``report`` so both can use it (dependencies point down).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

ProvenanceKind = Literal["measured", "estimated", "predicted", "replayed"]
PROVENANCE_KINDS: tuple[ProvenanceKind, ...] = ("measured", "estimated", "predicted", "replayed")


class EnergyProvenance(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How one set of joules was obtained. Only the fields of its ``kind`` are set.

    - ``measured``: ``sensor`` names the counter that was read.
    - ``estimated``: ``formula`` and the ``constants`` it used.
    - ``predicted``: ``model``, ``training_set_size`` and ``held_out_error`` (with ``held_out_metric``).
    - ``replayed``: ``trace_path``, and ``original``, the provenance the trace says it was recorded with.
    """

    kind: ProvenanceKind  # measured | estimated | predicted | replayed
    sensor: str | None = None  # measured: the counter that was read
    formula: str | None = None  # estimated: how the joules were computed
    constants: dict[str, Any] = msgspec.field(default_factory=dict)  # estimated: every constant of the formula
    model: str | None = None  # predicted: which model
    training_set_size: int | None = None  # predicted: samples it was trained on
    held_out_error: float | None = None  # predicted: its error on samples it did not see
    held_out_metric: str | None = None  # e.g. "median absolute relative error", so the number can be read
    trace_path: str | None = None  # replayed: the trace file
    original: EnergyProvenance | None = None  # replayed: how the trace says its joules were obtained
    # False for a trace that Magneton did not record (hand-written or edited): its "measured" is only a claim.
    recorded_by_magneton: bool | None = None

    @classmethod
    def measured(cls, sensor: str) -> EnergyProvenance:
        return cls(kind="measured", sensor=sensor)

    @classmethod
    def estimated(cls, formula: str, constants: Mapping[str, Any] | None = None) -> EnergyProvenance:
        return cls(kind="estimated", formula=formula, constants=dict(constants or {}))

    @classmethod
    def predicted(
        cls, model: str, training_set_size: int, held_out_error: float, held_out_metric: str
    ) -> EnergyProvenance:
        return cls(
            kind="predicted",
            model=model,
            training_set_size=training_set_size,
            held_out_error=held_out_error,
            held_out_metric=held_out_metric,
        )

    @classmethod
    def replayed(
        cls, trace_path: str, original: EnergyProvenance, recorded_by_magneton: bool | None = None
    ) -> EnergyProvenance:
        return cls(kind="replayed", trace_path=trace_path, original=original, recorded_by_magneton=recorded_by_magneton)

    def describe(self) -> str:
        """One phrase for people: 'measured by X', 'estimated: formula', ..."""
        if self.kind == "measured":
            return f"measured by {self.sensor}"
        if self.kind == "estimated":
            return f"estimated: {self.formula}"
        if self.kind == "predicted":
            error = (
                f", held-out {self.held_out_metric} {self.held_out_error:.3g}"
                if self.held_out_error is not None
                else ""
            )
            return f"predicted by {self.model} (trained on {self.training_set_size} samples{error})"
        original = self.original.describe() if self.original else "unknown origin"
        claim = " (as the trace claims; not recorded by Magneton)" if self.recorded_by_magneton is False else ""
        return f"replayed from {self.trace_path}, originally {original}{claim}"


def provenance_of_backend(backend: Mapping[str, Any]) -> EnergyProvenance:
    """The provenance of a backend's joules, from its description (``BackendInfo.to_json()`` or a report's).

    A replay backend's description holds the recording backend under ``constants.recorded_backend``.
    """
    constants = backend.get("constants") or {}
    if backend.get("name") == "replay" and isinstance(constants.get("recorded_backend"), Mapping):
        original = provenance_of_backend(constants["recorded_backend"])
        recorded = constants.get("recorded_by_magneton")
        return EnergyProvenance.replayed(
            str(constants.get("trace_path", "?")),
            original,
            recorded if isinstance(recorded, bool) else None,
        )
    if backend.get("provenance") == "estimated":
        return EnergyProvenance.estimated(str(backend.get("formula") or "unknown formula"), constants)
    return EnergyProvenance.measured(str(backend.get("sensor") or "unknown sensor"))


__all__ = ["PROVENANCE_KINDS", "EnergyProvenance", "ProvenanceKind", "provenance_of_backend"]
