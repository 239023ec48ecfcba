"""Per-core CPU power for the ``estimate`` backend: TDP / cores from a small public table.

TDP is the vendor's sustained-power design figure, not a measurement of this
process; dividing it by the physical core count gives the power one fully busy
core is budgeted. It is an upper-range estimate of dynamic CPU power and every
report that uses it says so.
"""

from __future__ import annotations

import math
import os
import re
import statistics
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ENV_WATTS_PER_CORE = "MAGNETON_CPU_WATTS_PER_CORE"


@dataclass(frozen=True)
class CpuPowerSpec:
    model_pattern: str  # regex matched against the CPU brand string
    tdp_w: float
    cores: int
    source: str  # public page with the TDP and core count

    @property
    def watts_per_core(self) -> float:
        return self.tdp_w / self.cores


# Vendor spec pages (ark.intel.com / amd.com product pages).
CPU_TDP_TABLE: tuple[CpuPowerSpec, ...] = (
    CpuPowerSpec(r"Xeon.*Platinum 8480\+", 350, 56, "https://ark.intel.com/content/www/us/en/ark/products/231746.html"),
    CpuPowerSpec(r"Xeon.*Platinum 8380\b", 270, 40, "https://ark.intel.com/content/www/us/en/ark/products/212287.html"),
    CpuPowerSpec(r"Xeon.*Platinum 8358\b", 250, 32, "https://ark.intel.com/content/www/us/en/ark/products/212282.html"),
    CpuPowerSpec(r"Xeon.*Gold 6338\b", 205, 32, "https://ark.intel.com/content/www/us/en/ark/products/212285.html"),
    CpuPowerSpec(r"Xeon.*Platinum 8280\b", 205, 28, "https://ark.intel.com/content/www/us/en/ark/products/192478.html"),
    CpuPowerSpec(r"Xeon.*Gold 6248\b", 150, 20, "https://ark.intel.com/content/www/us/en/ark/products/192446.html"),
    CpuPowerSpec(r"Xeon.*Gold 6148\b", 150, 20, "https://ark.intel.com/content/www/us/en/ark/products/120489.html"),
    CpuPowerSpec(r"Xeon.*E5-2686 v4", 145, 18, "https://ark.intel.com/content/www/us/en/ark/products/91317.html"),
    CpuPowerSpec(r"Core.*i9-13900K\b", 125, 24, "https://ark.intel.com/content/www/us/en/ark/products/230496.html"),
    CpuPowerSpec(r"Core.*i7-12700K\b", 125, 12, "https://ark.intel.com/content/www/us/en/ark/products/134594.html"),
    CpuPowerSpec(
        r"EPYC 9654\b",
        360,
        96,
        "https://www.amd.com/en/products/processors/server/epyc/4th-generation-9004-and-8004-series/amd-epyc-9654.html",
    ),
    CpuPowerSpec(
        r"EPYC 7763\b", 280, 64, "https://www.amd.com/en/products/processors/server/epyc/7003-series/amd-epyc-7763.html"
    ),
    CpuPowerSpec(
        r"EPYC 7543\b", 225, 32, "https://www.amd.com/en/products/processors/server/epyc/7003-series/amd-epyc-7543.html"
    ),
    CpuPowerSpec(
        r"Ryzen 9 7950X\b",
        170,
        16,
        "https://www.amd.com/en/products/processors/desktops/ryzen/7000-series/amd-ryzen-9-7950x.html",
    ),
)

# Used when the CPU is not in the table (VMs often hide the model): the median
# watts per core of the table above, so the default is derived, not invented.
DEFAULT_WATTS_PER_CORE = round(statistics.median(s.watts_per_core for s in CPU_TDP_TABLE), 2)


@dataclass(frozen=True)
class WattsPerCore:
    """The per-core power used by the estimate and where it came from."""

    watts: float
    origin: str  # "override:<where>", "table", "default"
    cpu_model: str
    detail: str


def cpu_model_name(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU brand string: /proc/cpuinfo on Linux (instant), else py-cpuinfo (slow: it probes the CPU)."""
    try:
        for line in cpuinfo_path.read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        import cpuinfo

        brand = cpuinfo.get_cpu_info().get("brand_raw")
        if brand:
            return str(brand)
    except Exception:  # py-cpuinfo shells out and can fail on odd platforms
        pass
    return "unknown CPU"


def match_cpu(model: str) -> CpuPowerSpec | None:
    for spec in CPU_TDP_TABLE:
        if re.search(spec.model_pattern, model):
            return spec
    return None


def resolve_watts_per_core(override: float | None = None, model: str | None = None) -> WattsPerCore:
    """Pick watts per core: CLI override, then environment, then the TDP table, then the default."""
    model = model if model is not None else _cached_model()
    if override is not None:
        return WattsPerCore(
            _positive(override, "--cpu-watts-per-core"),
            "override:--cpu-watts-per-core",
            model,
            "given on the command line",
        )
    env_value = os.environ.get(ENV_WATTS_PER_CORE)
    if env_value:
        try:
            watts = float(env_value)
        except ValueError:
            from magneton.errors import MagnetonError

            raise MagnetonError(f"{ENV_WATTS_PER_CORE}={env_value!r} is not a number of watts") from None
        return WattsPerCore(
            _positive(watts, ENV_WATTS_PER_CORE), f"override:{ENV_WATTS_PER_CORE}", model, "set in the environment"
        )
    spec = match_cpu(model)
    if spec is not None:
        return WattsPerCore(
            spec.watts_per_core, "table", model, f"TDP {spec.tdp_w:g} W / {spec.cores} cores ({spec.source})"
        )
    return WattsPerCore(
        DEFAULT_WATTS_PER_CORE,
        "default",
        model,
        f"CPU model not in the TDP table; median W/core of {len(CPU_TDP_TABLE)} listed server CPUs",
    )


@lru_cache(maxsize=1)
def _cached_model() -> str:
    return cpu_model_name()


def _positive(watts: float, where: str) -> float:
    if not (math.isfinite(watts) and watts > 0):
        from magneton.errors import MagnetonError

        raise MagnetonError(f"{where} must be a finite, positive number of watts, got {watts}")
    return float(watts)
