"""The allocator setting changes where big blocks come from, and only when the energy pass is asked to apply it.

Each case runs in a fresh interpreter: the setting lasts for the rest of a process, and the test process
may already have it from an earlier test.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Where a fresh 16 MiB malloc lands: above glibc's default mmap threshold (128 KiB, rising only as far as the
# largest block freed so far) it is a fresh mmap; below the threshold Magneton fixes (32 MiB) it comes from the heap.
WHERE_MALLOC_LANDS = """
import ctypes
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
address = libc.malloc(16 << 20)
heap = []
for line in open("/proc/self/maps"):
    if line.rstrip().endswith("[heap]"):
        low, high = (int(part, 16) for part in line.split()[0].split("-"))
        heap.append((low, high))
print("heap" if any(low <= address < high for low, high in heap) else "mmap")
"""


def _run(prelude: str) -> list[str]:
    code = textwrap.dedent(prelude) + WHERE_MALLOC_LANDS
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


glibc_only = pytest.mark.skipif(not GLIBC, reason="mallopt thresholds exist only in glibc")


@glibc_only
def test_untouched_process_mmaps_big_blocks() -> None:
    """The control: without the setting, the same allocation is an mmap (so the next case can fail)."""
    assert _run("") == ["mmap"]


@glibc_only
def test_steady_allocator_serves_big_blocks_from_the_heap() -> None:
    lines = _run(
        """
        from magneton.measure.allocator import steady_allocator
        note = steady_allocator()
        print("noted" if note and "glibc malloc" in note else "silent")
        """
    )
    assert lines == ["noted", "heap"]


@glibc_only
def test_settled_allocator_serves_big_blocks_from_the_heap() -> None:
    # glibc's own adaptive threshold, taken to its ceiling by one freed block: a 16 MiB block now comes from the
    # heap, as in a long-running process, though no threshold was fixed.
    lines = _run(
        """
        from magneton.measure.allocator import settle_allocator
        note = settle_allocator()
        print("noted" if note and "ceiling" in note else "silent")
        """
    )
    assert lines == ["noted", "heap"]


@glibc_only
def test_settling_leaves_thresholds_the_user_set_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Thresholds from the environment switch glibc's adaptation off: that allocator is measured as it is.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
    lines = _run(
        """
        from magneton.measure.allocator import settle_allocator
        print("silent" if settle_allocator() is None else "noted")
        """
    )
    assert lines == ["silent", "mmap"]


@pytest.mark.parametrize("mode", ["settled", "process", "steady"])
def test_energy_pass_puts_the_allocator_in_the_state_asked_for(
    mode: str, allocator_calls: list[str], fake_backend_cls
) -> None:
    import torch

    from magneton.capture import capture
    from magneton.measure import energy_pass
    from magneton.measure.options import PassOptions
    from magneton.workload import Workload

    workload = Workload(torch.nn.ReLU(), (torch.randn(8),))
    options = PassOptions(
        trials=1,
        warmup_calls=0,
        min_window_s=0.001,
        idle_s=0.0,
        allocator=mode,  # type: ignore[arg-type]
    )
    result = energy_pass.run_energy_pass(capture(workload), workload, fake_backend_cls(), options)
    assert allocator_calls == ([] if mode == "process" else [mode])
    assert ("test double" in result.allocator) == (mode != "process")
    assert not any("test double" in note for note in result.notes)  # said once, in the allocator field
    assert PassOptions().allocator == "settled"
