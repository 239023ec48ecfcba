"""RAPL backend against a fake powercap tree: discovery, no double counting, wraparound, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from magneton.errors import BackendUnavailable, SensorPermissionError
from magneton.measure.backends import BackendOptions, create_backend
from magneton.measure.backends import rapl as rapl_module
from magneton.measure.backends.rapl import RaplBackend, counter_delta_uj

MAX_RANGE_UJ = 262_143_328_850  # a real Intel package value


def make_zone(parent: Path, zone: str, name: str, energy_uj: int, max_range_uj: int = MAX_RANGE_UJ) -> Path:
    directory = parent / zone
    directory.mkdir(parents=True)
    (directory / "name").write_text(f"{name}\n")
    (directory / "energy_uj").write_text(f"{energy_uj}\n")
    (directory / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    return directory


def set_energy(root: Path, zone: str, energy_uj: int) -> None:
    (root / zone / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """One socket laid out like sysfs: flat symlinks at the top, subzones nested in the package."""
    (tmp_path / "intel-rapl").mkdir()  # the control-type directory, not a zone
    package = make_zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    make_zone(package, "intel-rapl:0:0", "core", 500_000)
    make_zone(package, "intel-rapl:0:1", "dram", 2_000_000)
    (tmp_path / "intel-rapl:0:0").symlink_to(package / "intel-rapl:0:0")
    (tmp_path / "intel-rapl:0:1").symlink_to(package / "intel-rapl:0:1")
    make_zone(tmp_path, "intel-rapl:1", "psys", 9_000_000)
    return tmp_path


def test_discovers_package_and_dram_only(powercap: Path) -> None:
    backend = RaplBackend(powercap)
    assert [(d.label, d.zone, d.kind) for d in backend.domains] == [
        ("package-0", "intel-rapl:0", "package"),
        ("dram", "intel-rapl:0:1", "dram"),
    ]
    info = backend.info()
    assert info.name == "rapl"
    assert info.provenance == "measured"
    assert info.sensor == "RAPL powercap energy_uj (package-0, dram)"
    # A stale 1 ms update at either end of a window stays a small share of it.
    assert info.update_period_s is not None and info.update_period_s / info.min_window_s <= 0.05
    assert info.resolution_j == pytest.approx(15.2587890625e-6)
    assert info.constants["domains"] == {"package-0": "intel-rapl:0", "dram": "intel-rapl:0:1"}
    assert any("psys" in note for note in info.notes)


def test_window_sums_package_and_dram_not_core_or_psys(powercap: Path) -> None:
    backend = RaplBackend(powercap)
    window = backend.open_window()
    set_energy(powercap, "intel-rapl:0", 1_000_000 + 1_500_000)
    set_energy(powercap / "intel-rapl:0", "intel-rapl:0:1", 2_000_000 + 250_000)
    set_energy(powercap / "intel-rapl:0", "intel-rapl:0:0", 500_000 + 1_000_000)  # inside package already
    set_energy(powercap, "intel-rapl:1", 9_000_000 + 7_000_000)  # platform: includes the package
    reading = backend.close_window(window)
    assert reading.energy_j == pytest.approx(1.75, abs=1e-12)
    assert reading.time_s > 0
    assert backend.info().constants["last_window_energy_j"] == pytest.approx(
        {"package-0": 1.5, "dram": 0.25}, abs=1e-12
    )


def test_counter_delta_handles_wraparound() -> None:
    assert counter_delta_uj(100, 350, 1000) == 250
    # 900 -> 1000 is 100 steps, 1000 -> 0 one more, 0 -> 100 another 100.
    assert counter_delta_uj(900, 100, 1000) == 201
    assert counter_delta_uj(500, 500, 1000) == 0


def test_window_across_wraparound_per_domain(tmp_path: Path) -> None:
    make_zone(tmp_path, "intel-rapl:0", "package-0", 999_000, max_range_uj=1_000_000)
    make_zone(tmp_path, "intel-rapl:0:1", "dram", 10_000, max_range_uj=5_000_000)
    backend = RaplBackend(tmp_path)
    window = backend.open_window()
    set_energy(tmp_path, "intel-rapl:0", 4_000)  # wrapped: 1_000 + 1 + 4_000 uJ
    set_energy(tmp_path, "intel-rapl:0:1", 30_000)  # did not wrap: 20_000 uJ
    reading = backend.close_window(window)
    breakdown_j = backend.info().constants["last_window_energy_j"]
    assert breakdown_j == pytest.approx({"package-0": 5_001e-6, "dram": 20_000e-6}, abs=1e-15)
    assert reading.energy_j == pytest.approx(25_001e-6, abs=1e-15)


def test_two_sockets_get_distinct_dram_labels(tmp_path: Path) -> None:
    for socket in (0, 1):
        make_zone(tmp_path, f"intel-rapl:{socket}", f"package-{socket}", 0)
        make_zone(tmp_path, f"intel-rapl:{socket}:0", "dram", 0)
    backend = RaplBackend(tmp_path)
    assert [d.label for d in backend.domains] == ["package-0", "dram-0", "package-1", "dram-1"]


def test_mmio_duplicate_of_package_is_skipped(tmp_path: Path) -> None:
    make_zone(tmp_path, "intel-rapl:0", "package-0", 0)
    make_zone(tmp_path, "intel-rapl-mmio:0", "package-0", 0)
    backend = RaplBackend(tmp_path)
    assert [d.zone for d in backend.domains] == ["intel-rapl:0"]
    assert any("intel-rapl-mmio" in note for note in backend.info().notes)


def test_amd_style_zone_names(tmp_path: Path) -> None:
    make_zone(tmp_path, "amd-rapl:0", "package-0", 0)
    assert [d.zone for d in RaplBackend(tmp_path).domains] == ["amd-rapl:0"]


def test_missing_root_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match=r"no RAPL powercap zones under .*does-not-exist"):
        RaplBackend(tmp_path / "does-not-exist")


def test_root_without_zones_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "intel-rapl").mkdir()
    make_zone(tmp_path, "intel-rapl:0:0", "core", 0)  # a core subzone alone is not a domain
    with pytest.raises(BackendUnavailable, match="no RAPL powercap zones under") as err:
        RaplBackend(tmp_path)
    assert not isinstance(err.value, SensorPermissionError)


def test_unreadable_energy_says_how_to_fix(powercap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, where chmod 000 does not deny; fail the read itself instead.
    real_read_int = rapl_module._read_int

    def deny_energy(path: Path) -> int:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_int(path)

    monkeypatch.setattr(rapl_module, "_read_int", deny_energy)
    with pytest.raises(SensorPermissionError) as err:
        RaplBackend(powercap)
    message = str(err.value)
    assert "root only" in message
    assert f"sudo chmod o+r {powercap}/*rapl:*/energy_uj" in message
    assert "udev" in message


def test_permission_lost_while_measuring(powercap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = RaplBackend(powercap)

    def deny(path: Path) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(rapl_module, "_read_int", deny)
    with pytest.raises(SensorPermissionError, match="chmod o\\+r"):
        backend.open_window()


def test_create_backend_uses_powercap_root(powercap: Path) -> None:
    choice = create_backend("rapl", BackendOptions(powercap_root=powercap))
    assert isinstance(choice.backend, RaplBackend)
    assert choice.backend.info().sensor == "RAPL powercap energy_uj (package-0, dram)"
