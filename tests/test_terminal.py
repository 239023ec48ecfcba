"""The terminal report: golden output at 80 and 160 columns, layout rules, escaping of foreign text."""

from __future__ import annotations

import io
import re

import msgspec
import pytest
from golden.report_fixture import FIXTURES, PROVENANCE, WIDTHS, golden_path, golden_report, render
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from magneton.provenance import EnergyProvenance
from magneton.report.model import CaptureSummary, NodeSource, Report
from magneton.report.terminal import clip, clip_left, fold_paths, one_line, summary_line


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
@pytest.mark.parametrize("width", WIDTHS)
def test_golden_output(width: int, fixture: str) -> None:
    expected = golden_path(width, fixture).read_text(encoding="utf-8")
    assert render(width, FIXTURES[fixture]()) == expected, (
        f"terminal output of {fixture} at {width} columns changed: review it, then `just golden`"
    )


@pytest.mark.parametrize("width", [80, 120, 160])
def test_no_line_is_wider_than_the_terminal(width: int) -> None:
    from rich.cells import cell_len

    for line in render(width).splitlines():
        assert cell_len(line) <= width, line


@pytest.mark.parametrize("width", [80, 120, 160])
def test_repeated_layers_fold_into_one_row_each_on_one_line(width: int) -> None:
    out = render(width)
    table = out.split("Top 5 operators by energy (median over trials; ~ noisy)")[1].split("By source line")[0]
    rows = [line for line in table.splitlines() if re.match(r"^\d+ ", line)]
    # 4 layers x 4 ops fold into 4 rows, plus the user's indexing line: 16 + 1 nodes, 5 rows, one line each.
    assert [row.split()[0] for row in rows] == ["1", "2", "3", "4", "5"]
    assert sum("×4" in row for row in rows) == 4
    assert len(table.strip().splitlines()) == 2 + 5  # header, rule, rows: nothing wrapped


@pytest.mark.parametrize("width", [80, 120, 160])
def test_file_line_is_never_split(width: int) -> None:
    out = render(width)
    for line_number in (401, 312, 640, 702):
        assert re.search(rf"modeling_gpt2\.py:{line_number}\b", out), line_number
    assert re.search(r"_name\.py:1234\b", out)  # a long path loses its start, never its end


def test_wide_view_shows_module_and_folded_layer_range() -> None:
    out = render(160)
    assert "transformer.h.{0-3}.attn" in out
    assert "time" in out.split("By source line")[0]
    assert "module" not in render(80).split("By source line")[0]


def test_brackets_in_code_and_text_are_printed_not_parsed() -> None:
    out = render(160)
    assert "x = self.layers[i](x)[mask]" in out
    assert "# [/bold] not markup" in out
    assert "make_fx was not needed; [/red] stays text" in out
    assert "[Errno 13] Permission denied" in out
    assert "examples/gpt2.py:workload[small]" in out


def test_interval_and_noisy_threshold_come_from_the_report() -> None:
    report = golden_report()
    out = render(160, report)
    assert "94% CI over 5 trials: " in out
    assert "±25% of the median" in out
    assert "94% CI over 3 trials: " in render(160, msgspec.structs.replace(report, total_energy_trials=3))
    stricter = msgspec.structs.replace(report, noisy_relative_spread=0.1, trials=1, total_energy_ci_confidence=0.0)
    out = render(160, stricter)
    assert "±10% of the median" in out and "±25%" not in out
    assert "no interval (1 trial)" in out and "CI over" not in out


def test_provenance_sentence_follows_the_report() -> None:
    report = golden_report()
    assert "All energies are ESTIMATED (energy_j = process_cpu_time_s * watts_per_core)" in render(160, report)
    measured = msgspec.structs.replace(report, energy_provenance=EnergyProvenance.measured("NVML total energy"))
    assert "All energies MEASURED by NVML total energy." in render(160, measured)
    claimed = EnergyProvenance.replayed("hand.json", EnergyProvenance.measured("RAPL"), recorded_by_magneton=False)
    out = render(160, msgspec.structs.replace(report, energy_provenance=claimed))
    assert "MEASURED" not in out
    assert "All energies are REPLAYED from hand.json; the trace says: measured by RAPL." in out
    assert "Magneton did not record this trace" in out
    assert "ESTIMATED from CPU time" not in render(160, report)


def test_quiet_summary_line_names_backend_and_provenance() -> None:
    line = summary_line(golden_report()).plain
    assert line.startswith("examples/gpt2.py:workload[small]: ")
    assert "backend estimate, ESTIMATED; auto: no readable sensor, estimate is the fallback" in line


def test_fold_paths() -> None:
    assert fold_paths(["h.0.attn", "h.1.attn", "h.2.attn"]) == "h.{0-2}.attn"
    assert fold_paths(["h.0.attn", "h.2.attn"]) == "h.{0,2}.attn"
    assert fold_paths(["enc.attn", "dec.attn"]) == "*.attn"
    assert fold_paths(["a.b", "a"]) == "*"
    assert fold_paths(["x", "x"]) == "x"


def test_clipping_keeps_the_end_of_a_location_and_the_start_of_code() -> None:
    assert clip("abcdef", 4) == "abc…"
    assert clip("abc", 4) == "abc"
    assert clip_left("some/dir/file.py:123", 12) == "…file.py:123"
    assert clip("全角文字です", 5) == "全角…"  # wide characters count two cells


def test_control_characters_are_shown_not_sent() -> None:
    assert one_line("a\nb\x1b[31mc\r") == "a\\x0ab\\x1b[31mc\\x0d"


# --- arbitrary text through the renderer ------------------------------------------------------------------

_any_text = st.text(max_size=60)
_printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30)


def _with_text(target: str, code: str, file: str, module: str, note: str) -> Report:
    report = golden_report()
    node = report.nodes[-2]  # the user's indexing node
    node = msgspec.structs.replace(
        node,
        op=note or "op",
        module_path=module,
        source=NodeSource(file=file or "f.py", line=3, function=note, code=code),
    )
    return msgspec.structs.replace(
        report,
        target=target,
        nodes=[*report.nodes[:-2], node, report.nodes[-1]],
        capture=CaptureSummary(method=note, notes=[note, code]),
        measurement_notes=[note],
        backend=msgspec.structs.replace(report.backend, warnings=[note], reason=code, sensor=note or "s"),
        energy_provenance=EnergyProvenance.replayed(file, PROVENANCE, recorded_by_magneton=False),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=_any_text, code=_any_text, file=_any_text, module=_any_text, note=_any_text)
def test_any_text_renders_at_80_columns(target: str, code: str, file: str, module: str, note: str) -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None, force_terminal=False)
    _with_text(target, code, file, module, note).show(console)
    assert "Magneton energy report" in out.getvalue()
    from rich.cells import cell_len

    assert all(cell_len(line) <= 80 for line in out.getvalue().splitlines())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=_printable, code=_printable, note=_printable)
def test_printable_text_survives_verbatim(target: str, code: str, note: str) -> None:
    out = io.StringIO()
    console = Console(file=out, width=1000, color_system=None, force_terminal=False)
    _with_text(target, code, "f.py", "m", note).show(console)
    text = out.getvalue()
    assert f"target      {target}" in text  # brackets and markup-like text are kept exactly
    assert note in text and code in text


def test_decoding_steps_table_sums_each_step_and_folds_a_long_middle() -> None:
    from golden.report_fixture import GENERATE_STEPS, generate_report

    from magneton.report.units import format_energy

    report = generate_report()
    out = render(80, report)
    table = out.split("By decoding step")[1].split("By source line")[0]
    energy = {step: sum(n.energy_j for n in report.nodes if n.step == step) for step in range(1, GENERATE_STEPS + 1)}
    prefill = next(line for line in table.splitlines() if "prefill" in line)
    assert prefill.split()[:3] == ["1", "of", str(GENERATE_STEPS)] and format_energy(energy[1]) in prefill
    last = next(line for line in table.splitlines() if line.strip().startswith(f"{GENERATE_STEPS} of"))
    assert format_energy(energy[GENERATE_STEPS]) in last
    folded = next(line for line in table.splitlines() if "decode ×" in line)
    middle = range(7, GENERATE_STEPS - 2)
    assert f"×{len(middle)}" in folded and format_energy(sum(energy[k] for k in middle)) in folded
    outside = next(line for line in table.splitlines() if "outside the model" in line)
    assert format_energy(sum(n.energy_j for n in report.nodes if n.step is None)) in outside
    assert "By decoding step" not in render(80)  # one forward pass: no step table
