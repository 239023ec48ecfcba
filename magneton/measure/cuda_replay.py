"""Replaying one operator call as a CUDA graph, and remembering which signatures cannot be.

A graph replay skips Python and launch overhead, so a tiny kernel's window holds
kernels rather than launches. Not every op can be captured: ops that sync with
the host, allocate on it, or have data-dependent output shapes fail. A failure
is remembered per signature (never retried every trial), the stream is put back,
and every node says how it was replayed (``replayed_as`` in the report).

Some torch versions leave the caching allocator in capture mode after a failed
capture, so every later capture asserts. After a failure a trivial capture is
tried; if that fails too, graphs are switched off for the rest of the pass and
the report says why, instead of each op quietly falling back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

GRAPH = "cuda_graph"
EAGER = "eager"


def dynamic_output_reason(op: Any) -> str | None:
    """Why ``op`` cannot be captured, judged from its tags, or None."""
    import torch

    tags = getattr(op, "tags", ())
    if torch.Tag.dynamic_output_shape in tags:
        return "dynamic output shape"
    if torch.Tag.data_dependent_output in tags:
        return "data-dependent output"
    return None


def _short(err: BaseException) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first[:160]}"


def capture_graph(call: Callable[[], Any]) -> Callable[[], Any]:
    """One call captured as a CUDA graph; raises what capture raised, with the current stream restored."""
    import torch

    previous = torch.cuda.current_stream()
    try:
        # Warm up on a side stream first, as CUDA graph capture requires (lazy cuBLAS workspaces etc.).
        side = torch.cuda.Stream()
        side.wait_stream(previous)
        with torch.cuda.stream(side):
            for _ in range(2):
                call()
        previous.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            call()
        return graph.replay
    except BaseException:
        # A capture that raised inside its context can leave the capture stream current.
        torch.cuda.set_stream(previous)
        torch.cuda.synchronize()
        raise


class CudaGraphReplays:
    """Per-signature verdicts: replayed as a CUDA graph, or eagerly and why."""

    def __init__(self, capture: Callable[[Callable[[], Any]], Callable[[], Any]] = capture_graph) -> None:
        self._capture = capture
        self.modes: dict[str, str] = {}  # signature -> "cuda_graph" or "eager (reason)"
        self.disabled: str | None = None  # set when capture stopped working for the whole pass

    def wrap(self, key: str, call: Callable[[], Any], op: Any = None) -> Callable[[], Any]:
        """``call`` as a graph replay when it can be, else ``call`` itself; the verdict is kept under ``key``."""
        known = self.modes.get(key)
        if known is not None and known != GRAPH:
            return call
        reason = self.disabled or (dynamic_output_reason(op) if op is not None else None)
        if reason is not None:
            self.modes[key] = f"{EAGER} ({reason})"
            return call
        try:
            replay = self._capture(call)
        except Exception as err:  # every capture failure has its own type; the op is replayed eagerly
            self.modes[key] = f"{EAGER} (graph capture failed: {_short(err)})"
            self._check_capture_still_works(key)
            return call
        self.modes[key] = GRAPH
        return replay

    def _check_capture_still_works(self, failed_key: str) -> None:
        import torch

        def trivial() -> None:
            torch.ones(1, device="cuda").add_(1)

        try:
            self._capture(trivial)
        except Exception as err:  # the allocator or stream state did not survive the failure
            self.disabled = f"graph capture stopped working after {failed_key} failed ({_short(err)})"

    def mode(self, key: str) -> str:
        return self.modes.get(key, EAGER)

    def notes(self) -> list[str]:
        return [f"CUDA graphs switched off: {self.disabled}; later operators were replayed eagerly"] * bool(
            self.disabled
        )


__all__ = ["EAGER", "GRAPH", "CudaGraphReplays", "capture_graph", "dynamic_output_reason"]
