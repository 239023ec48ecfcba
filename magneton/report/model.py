"""The typed ``magneton.report/1`` report: one model that every view renders and the schema comes from.

Why msgspec (over pydantic or dataclasses plus a generator):

- frozen ``Struct`` values, with type hints that mypy checks like dataclasses;
- ``msgspec.json.schema`` generates the JSON Schema from the model itself, so the
  checked-in ``schemas/report-1.schema.json`` is an output (``just schema``) and a
  test fails when it drifts;
- strict, validated decoding (``msgspec.json.decode(..., type=Report)``) with
  errors that name the bad field's path (``$.nodes[3].energy_j``), which
  :func:`magneton.report.load.load_report` turns into a clear ``MagnetonError``;
- speed: encoding or decoding a 10,000-node report takes milliseconds, an order
  of magnitude faster than pydantic or ``json`` plus dict walking, and it is
  already a dependency (``findings.py`` is built on it).

Every struct is frozen, keyword-only and writes every field (no omitted defaults), so
the JSON shape is stable. Field names are the public JSON contract (DESIGN.md): add fields freely, rename
none. Fields that older reports may lack have defaults; ``load_report`` fills the
provenance of older reports from their backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import msgspec

from magneton import __version__
from magneton.findings import Finding, FindingSource
from magneton.provenance import EnergyProvenance

if TYPE_CHECKING:
    from rich.console import Console

SCHEMA: Final = "magneton.report/1"

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
BackendName = Literal["estimate", "rapl", "nvml", "replay"]  # test_report_model checks it against the registry
BackendProvenance = Literal["measured", "estimated"]
Verdict = Literal["waste", "tradeoff", "same"]
Phase = Literal["forward", "backward", "optimizer"]


class BackendSummary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """The energy backend that produced the report's joules, and why it was chosen."""

    name: BackendName  # estimate | rapl | nvml | replay
    provenance: BackendProvenance  # what the joules are; for replay, what the trace recorded
    sensor: Annotated[str, msgspec.Meta(min_length=1)]  # what was read, in words (or that nothing was)
    min_window_s: float | None = None  # the shortest window the sensor can read
    resolution_j: float | None = None  # the smallest energy step the sensor reports
    update_period_s: float | None = None  # how often the counter refreshes; None: read on demand
    formula: str | None = None  # an estimate's formula
    constants: dict[str, Any] = msgspec.field(default_factory=dict)  # every constant the formula used
    notes: list[str] = msgspec.field(default_factory=list)  # what the backend wants known
    reason: str = ""  # why this backend (auto's choice or the user's)
    warnings: list[str] = msgspec.field(default_factory=list)  # e.g. why auto fell back to the estimate


class CaptureSummary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """How the operator graph was captured."""

    method: str  # torch.export | make_fx (pre-dispatch) | make_fx | torch.fx.symbolic_trace | piecewise
    notes: list[str] = msgspec.field(default_factory=list)  # why other capture methods failed, what was lost


class TensorInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """An operator's input or output tensor."""

    shape: list[int]
    dtype: str  # torch dtype without the ``torch.`` prefix
    stride: list[int]  # empty for sparse or nested tensors
    contiguous: bool
    device: str


class NodeSource(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """The innermost user (or third-party library) frame that produced an operator."""

    file: str
    line: Annotated[int, msgspec.Meta(ge=1)]
    function: str
    code: str = ""


class Node(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """One operator call: joules and seconds per call of the workload, with where they came from."""

    id: str  # unique within the report
    op: str  # ATen overload (aten.addmm.default), or module/function name for fx fallbacks
    energy_j: NonNegative  # per call of the workload (median over trials)
    time_s: NonNegative  # wall time per call (median over trials)
    expected_energy_j: float | None  # the expected-energy regression's prediction; None until it is trained
    source: NodeSource | None  # None when every frame was inside torch
    provenance: EnergyProvenance  # of energy_j, energy_ci_j and active_energy_j
    expected_provenance: EnergyProvenance | None = None  # of expected_energy_j (kind "predicted")
    active_energy_j: float = 0.0  # energy_j minus idle power x time_s
    energy_ci_j: tuple[float, float] = (0.0, 0.0)
    ci_confidence: float | None = None  # achieved coverage of energy_ci_j for the median; None: not measured
    # Samples (measurement windows) behind energy_ci_j; adaptive trials stop tight signatures early. None: not measured.
    trials: int | None = None
    noisy: bool = False  # CI half-width / median above the report's noisy_relative_spread
    share: float = 0.0  # energy_j / node_energy_sum_j
    rounds: int = 0  # calls per measurement window
    measured_as: str | None = None  # the node whose replay carried this measurement (equal signatures)
    replayed_as: str | None = None  # "cuda_graph", or "eager" (with why no graph, on CUDA); None: not measured
    zero_cost_reason: str | None = None  # views and metadata ops: not measured, energy 0
    module_path: str = ""  # nn.Module path ("" for the root)
    module_type: str = ""  # that module's class name
    inputs: list[TensorInfo] = msgspec.field(default_factory=list)
    outputs: list[TensorInfo] = msgspec.field(default_factory=list)
    phase: Phase | None = None  # a training step's phase; None for inference
    forward_node: str | None = (
        None  # a backward node: the forward operator it differentiates (its source is that one's)
    )
    minor_faults_per_call: float = 0.0  # page faults per call in its replay windows (getrusage), median
    major_faults_per_call: float = 0.0
    fault_energy_share: float = 0.0  # estimated: faults x the measured cost of one fault / time_s
    contended: bool = False  # a window of it waited for a CPU (other processes): energy_j may be over-counted
    run_delay_s_per_s: float | None = None  # median CPU wait of its windows' threads, seconds per second
    step: int | None = None  # the call of the model that ran it (generate: 1 = prefill, 2.. = decode steps)

    flops: int = 0  # floating-point operations of one call (flop_counter or Magneton's formulas)
    bytes: int = 0  # bytes read + written by one call; 0 for views
    # Counterfactual replay on well-laid-out copies of badly laid-out inputs (measured, the backend's provenance).
    ideal_layout_energy_j: float | None = None
    ideal_layout_provenance: EnergyProvenance | None = None
    ideal_layout_gap: float | None = None  # share of energy_j that well-laid-out inputs saved in the replay


class PageFaults(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """Page faults of the whole pass, and what share of its energy they explain (an estimate)."""

    minor_per_call: float
    major_per_call: float
    energy_share: float  # minor+major faults per call x fault_cost_s / total_time_s
    fault_cost_s: float  # measured here: first touch of fresh anonymous pages, per fault
    node_minor_per_call: float = 0.0  # summed over the operators' replays (each node once per call)
    method: str = "getrusage(RUSAGE_SELF) ru_minflt/ru_majflt around every window; cost by first-touch timing"


class Contention(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """How much other processes got in the way of the measurement windows."""

    windows: int
    contended_windows: int  # kept windows whose threads waited longer than threshold_s_per_s
    remeasured_windows: int  # extra windows taken because the first was contended (bounded)
    run_delay_s_per_s: float | None  # median over windows
    others_busy_cores: float | None  # median over windows: cores other processes kept busy
    threshold_s_per_s: float
    warning: str | None = None  # set when the share of contended windows passes the warning threshold
    method: str = "/proc/self/task/*/schedstat run delay and /proc/stat busy jiffies around every window"


class ModuleOverheadRow(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """Framework overhead of one module: its whole forward minus its child modules and its own operators."""

    module_path: str  # "" for the root module; "(outside the model)" for glue around it (generate)
    module_type: str
    calls: int
    whole_energy_j: float  # its whole forward replayed on its recorded inputs, summed over its calls
    children_energy_j: float
    operators_energy_j: float
    overhead_energy_j: float  # negative when its parts cost more replayed alone than in place
    share: float  # overhead_energy_j / total_energy_j
    source: NodeSource | None  # the module's forward definition
    provenance: EnergyProvenance | None = None


class MachineDrift(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """How the machine's thread-synchronisation cost moved during the analysis (host effects; CPU, >1 thread)."""

    reference: str  # what was timed: see magneton.measure.drift
    readings_s: list[float]  # process CPU time per reference call, one reading per trial
    spread: float  # largest reading / smallest - 1
    threshold: float  # spread above which ``warning`` is set
    warning: str | None = None
    method: str = "a fixed reference timed between windows, once per trial, on the workload's intra-op threads"


class MeasurementCost(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """Wall time of the energy pass against its floor (idle window + every window at its minimum)."""

    wall_s: float
    floor_s: float
    min_trials: int
    max_trials: int


class HeldOutError(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """The expected-energy model's error on data it was not trained on."""

    on: str  # "left-out shapes" | "real-model nodes"
    mdape: float | None  # median absolute percentage error of joules, as a fraction
    r2: float | None  # R² of log joules
    points: int


class ExpectedSummary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """How the nodes' expected energies were predicted and anomalies found (``magneton calibrate``)."""

    enabled: bool
    model: str | None = None
    held_out: list[HeldOutError] = msgspec.field(default_factory=list)
    calibration_path: str | None = None
    calibration_sweep: str | None = None  # "default" | "quick"
    calibration_created_utc: str | None = None
    device_fingerprint: str | None = None
    training_points: int = 0
    factor: float | None = None  # measured / expected above which the regression flags a node
    min_share: float | None = None  # excess / total below which no anomaly is reported
    min_gap: float | None = None  # counterfactual saving that flags a node
    counterfactual_replays: int = 0
    notes: list[str] = msgspec.field(default_factory=list)
    # This machine's best rates seen in calibration (95th percentile over the sweep, measured there): the
    # roofline's compute ceiling and bandwidth slope. None when calibration saw no such operator.
    peak_flops_per_s: float | None = None
    peak_bytes_per_s: float | None = None


class RollupLine(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """All operators one source line produced."""

    file: str
    line: int
    function: str
    code: str  # the source line, stripped
    energy_j: float  # sum of its nodes' energy_j
    time_s: float
    share: float  # of node_energy_sum_j
    nodes: list[str]  # node ids
    provenance: EnergyProvenance | None = None  # the nodes' provenance
    # A training step: the line's energy split by phase (backward: the operators differentiating this line's).
    forward_energy_j: float | None = None
    backward_energy_j: float | None = None
    optimizer_energy_j: float | None = None


class PhaseEnergy(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """A training step's operators of one phase: per-operator energies summed (coverage applies)."""

    phase: Phase
    energy_j: NonNegative
    time_s: NonNegative
    share: float  # of node_energy_sum_j
    count: int  # operators, zero-cost ones included
    provenance: EnergyProvenance | None = None


class RollupOp(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """All operators of one ATen kind."""

    op: str
    energy_j: float  # sum of its nodes' energy_j
    time_s: float
    share: float  # of node_energy_sum_j
    count: int  # nodes of this op
    provenance: EnergyProvenance | None = None  # the nodes' provenance


class Rollups(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """The nodes' energies grouped two ways, most energy first."""

    by_line: list[RollupLine] = msgspec.field(default_factory=list)
    by_op: list[RollupOp] = msgspec.field(default_factory=list)


class OperatorShare(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """One operator inside a diff region, with its energy from its side's per-operator pass."""

    id: str
    op: str
    energy_j: float  # 0 when the per-operator pass was skipped (--no-op-split) or the op is free
    zero_cost: bool = False
    source: NodeSource | None = None


class Region(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """A matched region of a diff: the same computation on side A and side B."""

    a_nodes: list[str]
    b_nodes: list[str]
    a_energy_j: float
    b_energy_j: float
    ratio: float | None  # a_energy_j / b_energy_j; None when b_energy_j is 0 (JSON has no infinity)
    verdict: Verdict
    a_provenance: EnergyProvenance | None = None
    b_provenance: EnergyProvenance | None = None
    ratio_ci: tuple[float, float] | None = None
    ci_confidence: float | None = None  # achieved coverage of ratio_ci
    a_time_s: float | None = None
    b_time_s: float | None = None
    # Added by the diff engine (magneton/diff): which region, what runs on each side, why this verdict.
    id: int | None = None
    part: str = "program"  # "program" or "constants" (values computed from parameters/constants alone)
    a_ops: list[str] = msgspec.field(default_factory=list)  # short operator names, program order
    b_ops: list[str] = msgspec.field(default_factory=list)
    a_energy_ci_j: tuple[float, float] | None = None  # per-trial interval of the region replay
    b_energy_ci_j: tuple[float, float] | None = None
    costly_side: Literal["A", "B"] | None = None
    excess_energy_j: float = 0.0
    reason: str = ""
    a_split: list[OperatorShare] = msgspec.field(default_factory=list)  # per-operator split inside the region
    b_split: list[OperatorShare] = msgspec.field(default_factory=list)
    knobs: dict[str, Any] | None = None  # configuration-knob diagnosis (same operators at different cost)


class DiffSide(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """One program of a diff: its total, capture, share of operators matched, settings."""

    label: Literal["A", "B"]
    target: str
    total_energy_j: NonNegative  # one forward pass, measured interleaved with the other side
    total_energy_ci_j: tuple[float, float] | None = None
    total_time_s: NonNegative
    region_energy_sum_j: float  # the side's region replays added up
    region_coverage: float | None  # region_energy_sum_j / total_energy_j
    operator_pass_total_j: float | None = None  # whole pass from the per-operator energy pass
    capture: CaptureSummary
    ops: int
    ops_in_matched_regions: int
    matched_share: float
    settings: dict[str, Any] = msgspec.field(default_factory=dict)  # global torch settings its build left


class SettingDifference(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    name: str
    a: Any
    b: Any


class UnmatchedRegion(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """Operators whose results pair with nothing on the other side (never dropped)."""

    part: str
    a_nodes: list[str]
    b_nodes: list[str]
    a_ops: list[str]
    b_ops: list[str]
    a_energy_j: float
    b_energy_j: float


class DiffSummary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """What a diff adds to a report: both sides, the settings that differ, the matching."""

    sides: list[DiffSide]
    threshold: float
    setting_differences: list[SettingDifference] = msgspec.field(default_factory=list)
    matching_time_s: float
    pairs: int
    unmatched: list[UnmatchedRegion] = msgspec.field(default_factory=list)
    outputs_largest_relative_difference: float | None = None
    outputs_where: str | None = None


class Report(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """A ``magneton.report/1`` report. Joules are per call of the workload (see ``energy_scope``)."""

    schema: Literal["magneton.report/1"] = SCHEMA  # the contract this report follows
    magneton_version: str = __version__  # the writer's version
    target: str | None = None  # one target; a diff has ``targets`` instead
    targets: list[str] | None = None  # a diff: [A, B]
    device: str  # torch device of the workload
    device_description: str = ""  # GPU name, or CPU model and architecture
    torch_version: str = ""
    threads: int | None = None  # torch intra-op threads during the analysis
    backend: BackendSummary  # the energy source
    energy_provenance: EnergyProvenance  # of the totals; every node and roll-up carries its own
    capture: CaptureSummary | None = None
    measurement_notes: list[str] = msgspec.field(default_factory=list)  # what Magneton changed or noticed
    energy_scope: str = "one forward pass of the workload"  # what one joule figure covers
    total_energy_j: NonNegative  # the whole run, measured as a whole (median over trials)
    total_energy_ci_j: tuple[float, float] | None = None  # confidence interval of total_energy_j
    total_energy_ci_confidence: float | None = None  # achieved coverage of total_energy_ci_j
    total_energy_trials: int | None = None  # samples behind total_energy_ci_j
    total_time_s: NonNegative  # wall time of the whole run
    active_energy_j: float | None = None  # total_energy_j minus idle power x total_time_s
    idle_power_w: float | None = None  # measured while the process slept
    node_energy_sum_j: float = 0.0  # sum of the nodes' energy_j
    coverage: float | None  # node_energy_sum_j / total_energy_j; None when undefined
    trials: int = 0  # the most trials any measurement got (each interval says its own: trials, total_energy_trials)
    ci_method: str = ""  # how the intervals were built, e.g. "order-statistic CI of the median over trials"
    noisy_relative_spread: float | None = None  # the threshold behind every node's ``noisy``
    min_window_s: float | None = None  # the shortest measurement window used
    unique_signatures: int = 0  # operator signatures measured (equal signatures share one measurement)
    # A program that writes into its inputs gets them copied back before every whole-pass run; that copy is
    # measured alone and already subtracted from total_energy_j (this is the subtracted median, per run).
    # None: the inputs were not restored, nothing was subtracted.
    input_restore_energy_j: float | None = None
    nodes: list[Node]  # every captured operator, in program order
    rollups: Rollups = msgspec.field(default_factory=Rollups)  # the nodes grouped by source line and by op
    findings: list[Finding]  # most excess energy first
    rule_notes: list[str] = msgspec.field(default_factory=list)  # files the rules could not parse, rules that failed
    regions: list[Region] | None = None  # a diff's matched regions
    phases: list[PhaseEnergy] | None = None  # a training step: energy per phase; None for inference
    overhead: list[ModuleOverheadRow] | None = None  # most overhead first; None when not attributed
    overhead_energy_j: float | None = None  # net: sum of every module's overhead (negative ones included)
    explained_coverage: float | None = None  # (node_energy_sum_j + overhead_energy_j) / total_energy_j
    steps: int | None = None  # calls of the model in one call of the workload (generate: prefill + decode steps)
    allocator: str = ""  # the allocator the workload ran under, and anything Magneton changed in it
    page_faults: PageFaults | None = None
    contention: Contention | None = None
    machine_drift: MachineDrift | None = None
    measurement_cost: MeasurementCost | None = None
    diff: DiffSummary | None = None  # a diff: both sides' totals, settings, matching, unmatched operators
    expected: ExpectedSummary | None = None  # the expected-energy stage; None when it did not run

    # ------------------------------------------------------------------ views

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready builtins (dicts, lists, numbers, strings)."""
        # Through JSON, so tuples become lists exactly as a script reading the file sees them.
        result: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(self))
        return result

    def to_json(self, indent: int = 2) -> str:
        """The ``magneton.report/1`` JSON text."""
        encoded = msgspec.json.encode(self)
        return msgspec.json.format(encoded, indent=indent).decode() + "\n"

    def write(self, path: str | Path) -> Path:
        """Write the JSON atomically (a reader never sees a half-written file); returns the path."""
        from magneton.atomic import write_text_atomic
        from magneton.errors import ReportError

        path = Path(path)
        text = self.to_json()
        try:  # JSON has no NaN: msgspec writes null, which must not turn a number into a file nobody can load
            msgspec.json.decode(text, type=Report)
        except msgspec.ValidationError as err:
            raise ReportError(f"report for {self.target or self.targets} not written to {path}: {err}") from err
        write_text_atomic(path, text)
        return path

    def show(self, console: Console | None = None, top: int = 15) -> None:
        """Print the rich terminal view (to stdout, or to ``console``)."""
        from rich.console import Console

        if self.diff is not None:
            from magneton.report.diff_terminal import render_diff_report

            render_diff_report(self, console or Console(), top=top)
            return
        from magneton.report.terminal import render_report

        render_report(self, console or Console(), top=top)

    def write_html(self, path: str | Path) -> Path:
        """Write the self-contained HTML report (opens offline) atomically; returns the path."""
        from magneton.report.html import write_html

        path = Path(path)
        write_html(path, self)
        return path

    def _repr_html_(self) -> str:
        """Jupyter shows the HTML report, inside an iframe so its script runs and its styles stay inside."""
        from magneton.report.html import repr_html

        return repr_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython: a short line, not 10k nodes
        printer.text(
            f"<Report {self.target or self.targets}: {self.total_energy_j:.3g} J "
            f"({self.energy_provenance.kind}), {len(self.nodes)} nodes, {len(self.findings)} findings>"
        )


__all__ = [
    "SCHEMA",
    "BackendName",
    "BackendSummary",
    "CaptureSummary",
    "Contention",
    "MeasurementCost",
    "ModuleOverheadRow",
    "PageFaults",
    "DiffSide",
    "DiffSummary",
    "EnergyProvenance",
    "ExpectedSummary",
    "Finding",
    "FindingSource",
    "HeldOutError",
    "Node",
    "NodeSource",
    "Phase",
    "PhaseEnergy",
    "OperatorShare",
    "Region",
    "Report",
    "RollupLine",
    "RollupOp",
    "Rollups",
    "SettingDifference",
    "TensorInfo",
    "UnmatchedRegion",
    "Verdict",
]
