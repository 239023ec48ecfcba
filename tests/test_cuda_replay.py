"""CUDA-graph replays with torch.cuda mocked: failed captures, cached verdicts, the device context."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import torch

from magneton.capture import capture
from magneton.measure import cuda_replay, energy_pass
from magneton.measure.cuda_replay import CudaGraphReplays
from magneton.measure.options import PassOptions
from magneton.workload import Workload


class Recorder:
    """torch.cuda's stream and graph calls replaced by an event log."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_capture: bool = False) -> None:
        self.events: list[Any] = []
        self.fail_capture = fail_capture
        recorder = self

        class FakeStream:
            def wait_stream(self, other: Any) -> None:
                pass

        self.main_stream = FakeStream()

        class FakeGraph:
            def replay(self) -> None:
                recorder.events.append("replay")

        @contextlib.contextmanager
        def capturing(graph: Any) -> Any:
            recorder.events.append("capture-begin")
            if recorder.fail_capture:
                # As torch does when an op syncs inside capture: the capture stream stays current.
                raise RuntimeError("operation not permitted when stream is capturing")
            yield
            recorder.events.append("capture-end")

        @contextlib.contextmanager
        def on_device(device: Any) -> Any:
            recorder.events.append(("device", str(device)))
            yield

        monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda: self.main_stream)
        monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
        monkeypatch.setattr(torch.cuda, "set_stream", lambda stream: self.events.append(("set_stream", stream)))
        monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
        monkeypatch.setattr(torch.cuda, "graph", capturing)
        monkeypatch.setattr(torch.cuda, "synchronize", lambda *args: self.events.append("synchronize"))
        monkeypatch.setattr(torch.cuda, "device", on_device)


def test_a_failed_capture_restores_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = Recorder(monkeypatch, fail_capture=True)
    with pytest.raises(RuntimeError, match="capturing"):
        cuda_replay.capture_graph(lambda: None)
    assert ("set_stream", cuda.main_stream) in cuda.events
    assert cuda.events[-1] == "synchronize"


def test_a_failed_capture_is_remembered_per_signature() -> None:
    attempts: list[str] = []

    def bad() -> None:
        pass

    def capture_fails_for_bad(call: Any) -> Any:
        attempts.append("capture")
        if call is bad:
            raise RuntimeError("cudaErrorStreamCaptureUnsupported")
        return call  # the trivial check capture succeeds: capturing still works

    replays = CudaGraphReplays(capture=capture_fails_for_bad)
    for _trial in range(3):
        assert replays.wrap("bad-signature", bad) is bad  # eager, never retried
    # One failed capture, plus one trivial capture to check capturing still works.
    assert attempts == ["capture", "capture"]
    assert replays.mode("bad-signature").startswith("eager (graph capture failed: RuntimeError")
    assert replays.disabled is None


def test_capture_broken_for_good_switches_graphs_off_with_a_note() -> None:
    def always_fails(call: Any) -> Any:
        raise RuntimeError("captures_underway.empty() INTERNAL ASSERT FAILED")

    replays = CudaGraphReplays(capture=always_fails)
    replays.wrap("first", lambda: None)
    replays.wrap("second", lambda: None)
    assert replays.mode("second").startswith("eager (graph capture stopped working after first failed")
    assert "CUDA graphs switched off" in replays.notes()[0]


def test_ops_with_dynamic_output_shapes_are_not_captured() -> None:
    def never(call: Any) -> Any:
        raise AssertionError("must not try to capture nonzero")

    replays = CudaGraphReplays(capture=never)
    replays.wrap("nonzero", lambda: None, op=torch.ops.aten.nonzero.default)
    assert replays.mode("nonzero") == "eager (dynamic output shape)"
    assert replays.notes() == []


def test_energy_pass_runs_on_the_workloads_device_and_says_how_each_node_replayed(
    monkeypatch: pytest.MonkeyPatch, fake_backend_cls: Any
) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval()
    workload = Workload(model, (torch.randn(2, 8),))
    graph = capture(workload)
    cuda = Recorder(monkeypatch)
    monkeypatch.setattr(energy_pass, "default_working_set_bytes", lambda device: 0)
    graph.device = "cuda:1"  # the tensors stay on the CPU; torch.cuda is the recorder
    result = energy_pass.run_energy_pass(
        graph, workload, fake_backend_cls(), PassOptions(trials=2, warmup_calls=0, idle_s=0.0)
    )
    assert cuda.events[0] == ("device", "cuda:1")
    measured = [r for r in result.nodes.values() if r is not None]
    assert measured and all(r.replayed_as == "cuda_graph" for r in measured)
    assert cuda.events.count("capture-end") == 2 * len(measured)  # each trial captures its own operands
