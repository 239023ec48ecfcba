from __future__ import annotations

from collections.abc import Iterator

from magneton.rules.base import GraphHit, Invalid, Rule, Valid
from magneton.rules.graphview import GraphView

_CASTS = ("to", "to_copy", "double", "float", "type_as")


class Float64RoundTrip(Rule):
    """Computation upcast to float64 and cast back to float32 (experimental: the precision may be wanted).

    float64 arithmetic is 2x the bytes and, on most GPUs, 1/32 to 1/64 of the
    float32 throughput; when the result is rounded back to float32 the extra
    precision often buys nothing. Sometimes it does (long accumulations, RoPE
    frequency tables), which the graph cannot tell: hence experimental.

    References: https://pytorch.org/docs/stable/tensor_attributes.html#torch.dtype,
    https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#arithmetic-instructions.
    """

    id = "MAG901"
    name = "float64-round-trip"
    category = "Misconfiguration"
    message = "float64 computation whose result is rounded back to float32"
    suggestion = "compute in float32 unless the extra precision is needed"
    VALID = (
        Valid("import torch\n\n\ndef workload():\n    return (lambda x: (x * 2).sum()), (torch.randn(64),)\n"),
        Valid(
            "import torch\n\n\ndef workload():\n    return (lambda x: (x.double() * 2).sum()), (torch.randn(64),)\n",
            why="the float64 result is returned",
        ),
    )
    INVALID = (
        Invalid(
            "import torch\n\n\ndef workload():\n"
            "    return (lambda x: (x.double() * 2).sum().float()), (torch.randn(64),)\n"
        ),
    )

    def check_graph(self, view: GraphView) -> Iterator[GraphHit]:
        for cast in view.of_base(*_CASTS):
            if not cast.inputs or not cast.outputs:
                continue
            if cast.inputs[0].dtype not in ("float32", "float16", "bfloat16") or cast.outputs[0].dtype != "float64":
                continue
            wide: list[str] = []
            frontier = [cast]
            back = None
            while frontier and back is None:
                current = frontier.pop()
                for reader in view.consumers(current):
                    if view.base(reader) in _CASTS and reader.outputs and reader.outputs[0].dtype != "float64":
                        back = reader
                        break
                    if reader.outputs and reader.outputs[0].dtype == "float64" and reader.id not in wide:
                        wide.append(reader.id)
                        frontier.append(reader)
            if back is not None and wide:
                yield GraphHit((cast.id, *wide, back.id), details={"float64_ops": len(wide)})
