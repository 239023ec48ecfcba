"""Findings from measurements of the whole pass: framework overhead per module, and the allocator knob.

The measurements live in :mod:`magneton.measure.overhead` and :mod:`magneton.measure.allocator_knob`, which
know nothing of reports or findings; this module puts their results on the report (rows, notes) and turns a
large enough effect into a Misconfiguration finding (kind ``anomaly``: no catalog rule, the measurement is
the evidence). The pipeline calls :func:`add_module_overhead` and :func:`add_allocator_check`.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import msgspec

from magneton.findings import Finding, FindingSource, sort_findings
from magneton.report.model import ModuleOverheadRow, NodeSource, Report

if TYPE_CHECKING:
    from magneton.measure.allocator_knob import KnobResult
    from magneton.measure.options import PassOptions
    from magneton.measure.overhead import ModuleOverhead

OVERHEAD_FINDING_SHARE = 0.5  # framework overhead above this share of the whole pass makes a finding


def add_module_overhead(report: Report, rows: list[ModuleOverhead]) -> Report:
    """The report with its overhead rows, net overhead, explained coverage, and a finding when overhead dominates."""
    total = report.total_energy_j
    model_rows = [
        ModuleOverheadRow(
            module_path=row.path,
            module_type=row.module_type,
            calls=row.calls,
            whole_energy_j=row.whole_energy_j,
            children_energy_j=row.children_energy_j,
            operators_energy_j=row.operators_energy_j,
            overhead_energy_j=row.overhead_energy_j,
            share=row.overhead_energy_j / total if total > 0 else 0.0,
            source=NodeSource(file=row.source.file, line=row.source.line, function=row.source.function, code="")
            if row.source
            else None,
            provenance=report.energy_provenance,
        )
        for row in rows
    ]
    # Net overhead: a module whose parts cost more replayed alone than in place has negative overhead,
    # and explained coverage then stays honest instead of counting only the positive side.
    overhead_j = sum(row.overhead_energy_j for row in rows)
    explained = (report.node_energy_sum_j + overhead_j) / total if total > 0 else None
    findings = list(report.findings)
    if total > 0 and overhead_j / total >= OVERHEAD_FINDING_SHARE:
        findings.append(overhead_finding(report, model_rows[0], overhead_j, explained))
    return msgspec.structs.replace(
        report,
        overhead=model_rows,
        overhead_energy_j=overhead_j,
        explained_coverage=explained,
        findings=sort_findings(findings),
    )


def overhead_finding(report: Report, top: ModuleOverheadRow, overhead_j: float, explained: float | None) -> Finding:
    """Framework overhead dominates the pass; ``top`` is the module with the most of it."""
    total = report.total_energy_j
    remedies = "a larger batch (the overhead is paid per call, not per sample), torch.compile"
    if report.device.startswith("cuda"):
        remedies += ", CUDA graphs"
    return Finding(
        kind="anomaly",
        rule=None,
        category="Misconfiguration",
        title="framework overhead dominates: most energy is spent between operators",
        energy_j=total,
        excess_energy_j=overhead_j,
        share=overhead_j / total,
        source=FindingSource(file=top.source.file, line=top.source.line, function=top.source.function)
        if top.source
        else None,
        suggestion=f"amortise or remove the per-call overhead: {remedies}",
        explanation=(
            f"{overhead_j / total:.0%} of the whole pass is Python and framework overhead outside the "
            f"operators, most in {top.module_path or '(root)'} [{top.module_type}] "
            f"({top.share:.0%}); the remedies' savings were not measured"
        ),
        energy_provenance=report.energy_provenance.kind,
        excess_provenance=report.energy_provenance.kind,
        details={"overhead_energy_j": overhead_j, "explained_coverage": explained},
    )


def add_allocator_check(
    report: Report, pass_options: PassOptions, watts_per_core: float | None, target: str | None, fault_share: float
) -> Report:
    """Measure the allocator knob in a child when it can matter; add the finding, or a note saying why not."""
    from magneton.measure.allocator_knob import measure_in_child, should_check

    if target is None:
        skipped: str | None = "allocator check skipped: an in-memory workload cannot be reloaded in a child process"
    else:
        skipped = should_check(report.device, report.allocator, fault_share, report.backend.name)
    if skipped is not None:
        return msgspec.structs.replace(report, measurement_notes=[*report.measurement_notes, skipped])
    assert target is not None
    try:
        knob = measure_in_child(
            target,
            report.backend.name,
            report.device,
            pass_options.forward_window_s,
            max(3, pass_options.min_trials),
            max(3, pass_options.forward_warmup_calls),
            watts_per_core,
            pass_options.allocator,
        )
    except (OSError, RuntimeError, ValueError, TypeError, subprocess.TimeoutExpired) as err:
        note = f"allocator check failed: {err}"
        return msgspec.structs.replace(report, measurement_notes=[*report.measurement_notes, note])
    note = (
        f"allocator check (child process): fixing glibc malloc's thresholds changes the whole pass by "
        f"{-knob.relative_change:+.0%} ({knob.default_faults_per_call:,.0f} -> {knob.steady_faults_per_call:,.0f} "
        "page faults per call)"
    )
    finding = allocator_finding(knob, report.total_energy_j, report.energy_provenance.kind)
    findings = [*report.findings, finding] if finding is not None else report.findings
    return msgspec.structs.replace(
        report, measurement_notes=[*report.measurement_notes, note], findings=sort_findings(findings)
    )


def allocator_finding(result: KnobResult, total_energy_j: float, provenance: str) -> Finding | None:
    """A Misconfiguration finding when fixing malloc's thresholds saves FINDING_THRESHOLD or more."""
    from magneton.measure.allocator_knob import FINDING_THRESHOLD, REMEDY

    change = result.relative_change
    if change < FINDING_THRESHOLD:
        return None
    excess_j = change * total_energy_j  # the same relative saving, on this analysis' whole pass
    return Finding(
        kind="anomaly",
        rule=None,
        category="Misconfiguration",
        title="glibc malloc returns and re-faults large temporaries on every call",
        energy_j=total_energy_j,
        excess_energy_j=excess_j,
        share=change,
        source=None,
        suggestion=REMEDY,
        explanation=(
            f"measured in a fresh child process: the whole pass took {result.default_median_j:.3g} J per call "
            f"under glibc's default thresholds ({result.default_faults_per_call:,.0f} page faults per call) and "
            f"{result.steady_median_j:.3g} J with the thresholds fixed ({result.steady_faults_per_call:,.0f} "
            f"faults per call): {change:.0%} less"
        ),
        energy_provenance=provenance,
        excess_provenance=provenance,
        details={
            "default_energy_j": result.default_energy_j,
            "steady_energy_j": result.steady_energy_j,
            "default_faults_per_call": result.default_faults_per_call,
            "steady_faults_per_call": result.steady_faults_per_call,
            "method": "child process: default windows, then mallopt(M_MMAP_THRESHOLD, M_TRIM_THRESHOLD), then "
            "steady windows; medians compared",
        },
    )
