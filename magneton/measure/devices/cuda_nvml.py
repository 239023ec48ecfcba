"""Which NVML GPU is torch's ``cuda:N``: by UUID, PCI bus id, or CUDA_VISIBLE_DEVICES, in that order.

CUDA's default device order (fastest first) can differ from NVML's (PCI bus
order), and CUDA_VISIBLE_DEVICES renumbers devices, so an index alone is the
last resort. MIG slices are refused: NVML's energy counter covers the whole GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from magneton.errors import BackendUnavailable, SensorNotSupported


def normalise_uuid(uuid: str) -> str:
    uuid = uuid.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if uuid.startswith(prefix):
            return uuid[len(prefix) :]
    return uuid


def _parse_pci_bus_id(bus_id: str) -> tuple[int, int, int] | None:
    """``"00000000:3B:00.0"`` or ``"0000:3b:00.0"`` -> (domain, bus, device)."""
    try:
        domain, bus, rest = bus_id.strip().split(":")
        device = rest.split(".")[0]
        return int(domain, 16), int(bus, 16), int(device, 16)
    except (ValueError, AttributeError):
        return None


def parse_cuda_visible_devices(value: str | None) -> list[str] | None:
    """The entries CUDA will honour, or None when the variable is unset (all devices).

    CUDA stops at the first entry that is not a device id (``"0,1,-1,2"`` shows
    two devices), so the list is cut there the same way.
    """
    if value is None:
        return None
    entries: list[str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            break
        if entry.startswith(("GPU-", "MIG-")) or (entry.isdigit()):
            entries.append(entry)
        else:
            break
    return entries


def refuse_mig_selection(torch_index: int, cuda_visible_devices: str | None, torch_uuid: str | None) -> None:
    """Raise SensorNotSupported when torch's device is a MIG slice (by CUDA_VISIBLE_DEVICES or UUID)."""
    visible = parse_cuda_visible_devices(cuda_visible_devices)
    entry = visible[torch_index] if visible is not None and torch_index < len(visible) else None
    if (entry is not None and entry.startswith("MIG-")) or (torch_uuid or "").strip().upper().startswith("MIG-"):
        raise SensorNotSupported(
            f"NVML cannot measure energy of a MIG slice (cuda:{torch_index} is {entry or torch_uuid}): "
            "energy counters exist only for the whole GPU; profile on a GPU without MIG"
        )


@dataclass(frozen=True)
class DeviceMatch:
    nvml_index: int
    matched_by: str  # "uuid", "pci_bus_id", "CUDA_VISIBLE_DEVICES", "ordinal"


def match_nvml_device(
    torch_index: int,
    cuda_visible_devices: str | None,
    nvml_uuids: Sequence[str],
    torch_uuid: str | None,
    nvml_pci_bus_ids: Sequence[str] | None = None,
    torch_pci_bus_id: str | None = None,
) -> DeviceMatch:
    """Find the NVML device behind torch's ``cuda:<torch_index>``, saying how it was matched.

    UUIDs are exact; PCI bus ids are exact too; the CUDA_VISIBLE_DEVICES
    ordinal is a last resort because CUDA's default order (fastest first) can
    differ from NVML's (PCI bus order).
    """
    refuse_mig_selection(torch_index, cuda_visible_devices, torch_uuid)
    visible = parse_cuda_visible_devices(cuda_visible_devices)
    entry = visible[torch_index] if visible is not None and torch_index < len(visible) else None
    if visible is not None and torch_index >= len(visible):
        raise BackendUnavailable(
            f"cuda:{torch_index} is not visible with CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} "
            f"({len(visible)} device(s) usable)"
        )
    normalised = [normalise_uuid(u) for u in nvml_uuids]
    if torch_uuid:
        wanted = normalise_uuid(torch_uuid)
        if wanted in normalised:
            return DeviceMatch(normalised.index(wanted), "uuid")
    if torch_pci_bus_id and nvml_pci_bus_ids:
        wanted_pci = _parse_pci_bus_id(torch_pci_bus_id)
        parsed = [_parse_pci_bus_id(b) for b in nvml_pci_bus_ids]
        if wanted_pci is not None and wanted_pci in parsed:
            return DeviceMatch(parsed.index(wanted_pci), "pci_bus_id")
    if entry is not None:
        if entry.isdigit():
            index = int(entry)
            if index >= len(nvml_uuids):
                raise BackendUnavailable(
                    f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} names GPU {index} "
                    f"but NVML sees {len(nvml_uuids)} GPU(s)"
                )
            return DeviceMatch(index, "CUDA_VISIBLE_DEVICES")
        # CUDA accepts any unique prefix of a GPU UUID.
        prefix = normalise_uuid(entry)
        hits = [i for i, u in enumerate(normalised) if u.startswith(prefix)]
        if len(hits) == 1:
            return DeviceMatch(hits[0], "CUDA_VISIBLE_DEVICES")
        raise BackendUnavailable(
            f"CUDA_VISIBLE_DEVICES entry {entry!r} matches {len(hits)} of NVML's GPUs ({', '.join(nvml_uuids)})"
        )
    if torch_index >= len(nvml_uuids):
        raise BackendUnavailable(f"cuda:{torch_index} does not exist: NVML sees {len(nvml_uuids)} GPU(s)")
    return DeviceMatch(torch_index, "ordinal")


@dataclass(frozen=True)
class TorchIdentity:
    uuid: str | None
    pci_bus_id: str | None


def torch_identity(torch_index: int) -> TorchIdentity:
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable(
            f"torch cannot use CUDA (torch {torch.__version__}, built for CUDA {torch.version.cuda}), "
            f"so cuda:{torch_index} cannot be matched to an NVML GPU"
        )
    count = torch.cuda.device_count()
    if torch_index >= count:
        raise BackendUnavailable(f"cuda:{torch_index} does not exist: torch sees {count} CUDA device(s)")
    props = torch.cuda.get_device_properties(torch_index)
    uuid = getattr(props, "uuid", None)
    # Older torch builds lack the PCI fields; the UUID usually suffices.
    pci_parts = [getattr(props, a, None) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id")]
    pci: str | None = None
    if all(isinstance(p, int) for p in pci_parts):
        domain, bus, device = pci_parts
        pci = f"{domain:08x}:{bus:02x}:{device:02x}.0"
    return TorchIdentity(str(uuid) if uuid is not None else None, pci)
