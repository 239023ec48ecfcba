"""The ``rapl`` backend: CPU package and DRAM energy counters from Linux powercap sysfs.

RAPL (Running Average Power Limit) exposes cumulative energy counters in
``/sys/class/powercap/<zone>/energy_uj``. Zones are named ``intel-rapl:N`` for
a CPU package (AMD Zen CPUs use the same driver and names) and
``intel-rapl:N:M`` for its subzones (``core``, ``uncore``, ``dram``). A
package counter already contains its core and uncore subzones, so a window's
energy is the sum of the package zones plus the DRAM zones, nothing else.

Facts the numbers rest on:

* counters wrap at ``max_energy_range_uj`` (about 262 kJ on Intel, i.e. every
  20-60 minutes at server power), so a window is read as ``(end - start) mod
  (max_energy_range_uj + 1)`` per domain; that handles one wrap per window,
  which holds for any window shorter than the wrap period;
* the hardware energy unit is 2^-16 J (15.3 uJ) on most Intel parts; sysfs
  rescales it to microjoules but cannot add precision;
* the counters advance about every 1 ms;
* they count the whole socket and its memory: every process, not only ours;
* since Linux 5.10 (CVE-2020-8694, the PLATYPUS side channel) ``energy_uj``
  is readable by root only unless an administrator relaxes it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magneton.errors import BackendError, BackendUnavailable, SensorPermissionError
from magneton.measure.backends.base import BackendInfo, EnergyBackend, WindowReading

DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")

# Intel's RAPL energy status unit is 2^-16 J on almost every part since Sandy
# Bridge; sysfs does not expose the per-zone unit, so this is the typical figure.
RAPL_RESOLUTION_J = 2.0**-16

# The counters advance about every millisecond (Intel SDM vol. 3B, 14.10.1).
RAPL_UPDATE_PERIOD_S = 0.001

# Each end of a window may be stale by up to one 1 ms update; at 20 ms that is
# at most 5% per end, and the two ends' errors mostly cancel over trials.
RAPL_MIN_WINDOW_S = 0.02

# intel-rapl:0, intel-rapl:0:1, amd-rapl:0, intel-rapl-mmio:0 ...
_ZONE_DIR = re.compile(r"^(?P<control>[a-z][a-z0-9_-]*rapl[a-z0-9_-]*)(?P<path>(?::\d+)+)$")


@dataclass(frozen=True)
class RaplDomain:
    """One counter that contributes to a window's energy."""

    label: str  # "package-0", "dram", ... (unique within a backend)
    zone: str  # sysfs zone directory name, e.g. "intel-rapl:0:1"
    kind: str  # "package" or "dram"
    energy_path: Path
    max_energy_range_uj: int


@dataclass(frozen=True)
class _Zone:
    control: str
    indices: tuple[int, ...]
    directory: Path
    name: str


def _read_text(path: Path) -> str:
    return path.read_text().strip()


def _read_int(path: Path) -> int:
    return int(_read_text(path))


def counter_delta_uj(start_uj: int, end_uj: int, max_energy_range_uj: int) -> int:
    """Energy between two readings of a counter that wraps after ``max_energy_range_uj``."""
    return (end_uj - start_uj) % (max_energy_range_uj + 1)


def _find_zones(root: Path) -> list[_Zone]:
    # /sys/class/powercap lists every zone flat (as symlinks), but subzones also
    # live inside their parent's directory; walk both and keep one per name.
    found: dict[str, _Zone] = {}
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            children = sorted(directory.iterdir())
        except OSError:
            continue
        for child in children:
            match = _ZONE_DIR.match(child.name)
            if match is None or child.name in found or not child.is_dir():
                continue
            try:
                name = _read_text(child / "name")
            except OSError:
                name = ""
            indices = tuple(int(part) for part in match.group("path").split(":")[1:])
            found[child.name] = _Zone(match.group("control"), indices, child, name)
            pending.append(child)
    return list(found.values())


def _select_domains(zones: list[_Zone]) -> tuple[list[_Zone], list[str]]:
    """Pick package and DRAM zones without counting any joule twice."""
    notes: list[str] = []
    controls = {zone.control for zone in zones}
    msr_controls = {control for control in controls if "mmio" not in control}
    if msr_controls and msr_controls != controls:
        # intel-rapl-mmio reads the same package counter through another path.
        notes.append(f"skipped {', '.join(sorted(controls - msr_controls))}: duplicates the MSR package counters")
        zones = [zone for zone in zones if zone.control in msr_controls]
    selected: list[_Zone] = []
    for zone in sorted(zones, key=lambda z: (z.control, z.indices)):
        kind = _zone_kind(zone)
        if kind is None:
            if zone.name == "psys":
                notes.append(f"skipped {zone.directory.name} (psys): platform energy already includes the packages")
            elif len(zone.indices) > 1:
                pass  # core / uncore are parts of their package's counter
            else:
                notes.append(f"skipped {zone.directory.name} ({zone.name or 'unnamed'}): unknown RAPL domain")
            continue
        selected.append(zone)
    return selected, notes


def _zone_kind(zone: _Zone) -> str | None:
    if zone.name == "dram":
        return "dram"
    if len(zone.indices) == 1 and zone.name.startswith("package"):
        return "package"
    return None


def _label_domains(zones: list[_Zone]) -> list[str]:
    names = [zone.name for zone in zones]
    # Two sockets each have a "dram" subzone; name repeated ones by their package.
    return [
        f"{name}-{zone.indices[0]}" if names.count(name) > 1 else name for name, zone in zip(names, zones, strict=True)
    ]


def _permission_message(path: Path, root: Path) -> str:
    return (
        f"cannot read {path}: since Linux 5.10 RAPL energy counters are readable by root only. "
        f"Fix: run as root, or `sudo chmod o+r {root}/*rapl:*/energy_uj` (until reboot), "
        "or make it permanent with a udev rule: "
        'SUBSYSTEM=="powercap", ACTION=="add", RUN+="/bin/chmod o+r /sys%p/energy_uj"'
    )


class RaplBackend(EnergyBackend):
    """Sum of RAPL package and DRAM energy counters, read from powercap sysfs."""

    name = "rapl"

    def __init__(self, root: Path = DEFAULT_POWERCAP_ROOT) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise BackendUnavailable(
                f"no RAPL powercap zones under {self.root}: the directory does not exist "
                "(not Linux, a VM or container without powercap, or the intel_rapl_common module is not loaded)"
            )
        zones, self._notes = _select_domains(_find_zones(self.root))
        if not zones:
            raise BackendUnavailable(
                f"no RAPL powercap zones under {self.root}: no package or dram zone found "
                "(a VM without RAPL passthrough, or load the kernel module with `sudo modprobe intel_rapl_msr`)"
            )
        domains = []
        for zone, label in zip(zones, _label_domains(zones), strict=True):
            energy_path = zone.directory / "energy_uj"
            try:
                max_range_uj = _read_int(zone.directory / "max_energy_range_uj")
                _read_int(energy_path)
            except PermissionError as err:
                raise SensorPermissionError(_permission_message(energy_path, self.root)) from err
            except (OSError, ValueError) as err:
                raise BackendUnavailable(f"RAPL zone {zone.directory} is not readable: {err}") from err
            domains.append(RaplDomain(label, zone.directory.name, _zone_kind(zone) or "", energy_path, max_range_uj))
        self.domains: tuple[RaplDomain, ...] = tuple(domains)
        self._last_breakdown_j: dict[str, float] = {}

    def info(self) -> BackendInfo:
        return BackendInfo(
            name=self.name,
            provenance="measured",
            sensor=f"RAPL powercap energy_uj ({', '.join(d.label for d in self.domains)})",
            min_window_s=RAPL_MIN_WINDOW_S,
            resolution_j=RAPL_RESOLUTION_J,
            update_period_s=RAPL_UPDATE_PERIOD_S,
            constants={
                "powercap_root": str(self.root),
                "domains": {d.label: d.zone for d in self.domains},
                "max_energy_range_uj": {d.label: d.max_energy_range_uj for d in self.domains},
                "last_window_energy_j": dict(self._last_breakdown_j),
            },
            notes=(
                "energy = sum of package and dram counters; core/uncore subzones are inside the package",
                "RAPL counts the whole CPU socket and its memory, including other processes",
                *self._notes,
            ),
        )

    def _read_all(self) -> list[int]:
        values = []
        for domain in self.domains:
            try:
                values.append(_read_int(domain.energy_path))
            except PermissionError as err:
                raise SensorPermissionError(_permission_message(domain.energy_path, self.root)) from err
            except (OSError, ValueError) as err:
                raise BackendError(f"reading RAPL counter {domain.energy_path} failed: {err}") from err
        return values

    def open_window(self) -> Any:
        # The counters are read outside the clock readings on both ends, so the
        # energy span contains the timed span rather than missing part of it.
        counters = self._read_all()
        return counters, time.perf_counter()

    def close_window(self, window: Any) -> WindowReading:
        start_uj, start_s = window
        end_s = time.perf_counter()
        end_uj = self._read_all()
        breakdown = {
            domain.label: counter_delta_uj(s, e, domain.max_energy_range_uj) * 1e-6
            for domain, s, e in zip(self.domains, start_uj, end_uj, strict=True)
        }
        self._last_breakdown_j = breakdown
        return WindowReading(energy_j=sum(breakdown.values()), time_s=end_s - start_s)
