"""Matching two programs by value: fingerprints, pairing and the exact regions of known pairs."""

from __future__ import annotations

import pytest
import torch

from magneton.capture import capture
from magneton.diff.engine import short_op
from magneton.diff.fingerprint import FingerprintRecorder, fingerprint
from magneton.diff.flow import Flow, build_flow
from magneton.diff.match import Match, match_flows
from magneton.diff.pairing import pair_values
from magneton.workload import Workload
from tests.workloads import diff_pairs


def _flow(make: object) -> Flow:
    fn, args = make()  # type: ignore[operator]
    recorder = FingerprintRecorder()
    graph = capture(Workload(fn, args), observer=recorder)
    return build_flow(graph, recorder.fingerprints)


def _match(slow: object, fast: object) -> tuple[Flow, Flow, Match]:
    a, b = _flow(slow), _flow(fast)
    return a, b, match_flows(a, b, pair_values(a, b))


def _regions(slow: object, fast: object) -> list[tuple[list[str], list[str], bool]]:
    a, b, match = _match(slow, fast)
    return [
        ([short_op(a.nodes[i].op) for i in r.a_ops], [short_op(b.nodes[j].op) for j in r.b_ops], r.matched)
        for r in match.regions
    ]


# ------------------------------------------------------------------------------------------- fingerprints


def test_fingerprint_ignores_layout() -> None:
    x = torch.randn(2, 4, 16, 8, generator=torch.Generator().manual_seed(0))
    reference = fingerprint(x)
    assert reference is not None
    for twin in (x.permute(0, 2, 1, 3), x.transpose(1, 2).contiguous(), x.reshape(8, 128), x.flatten(), x.mT):
        other = fingerprint(twin)
        assert other is not None and reference.matches(other), twin.shape


def test_fingerprint_sees_small_value_changes() -> None:
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    reference = fingerprint(x)
    assert reference is not None
    changed = x.clone()
    changed[3, 5] += 0.5  # one element of 2048
    for variant in (x * 1.01, x + 0.01, changed, x.to(torch.float64)):
        other = fingerprint(variant)
        assert other is not None
        assert not reference.matches(other) or variant.dtype != x.dtype and reference.kind == other.kind
    assert not reference.matches(fingerprint(x * 1.01))  # type: ignore[arg-type]
    assert not reference.matches(fingerprint(changed))  # type: ignore[arg-type]
    assert not reference.matches(fingerprint(x[:32]))  # type: ignore[arg-type]  # element count
    assert not reference.matches(fingerprint(x > 0))  # type: ignore[arg-type]  # other values
    assert not reference.matches(fingerprint(torch.complex(x, torch.zeros_like(x))))  # type: ignore[arg-type]


def test_fingerprint_pairs_the_same_numbers_across_real_dtypes() -> None:
    """A count summed in float32 and the same count from count_nonzero (int64) are one value; so are a mask
    and its 0/1 float copy."""
    x = torch.relu(torch.randn(64, 256, generator=torch.Generator().manual_seed(0)) - 0.3)
    as_float = torch.where(x != 0, torch.ones_like(x), torch.zeros_like(x))
    counted = fingerprint(torch.count_nonzero(x, dim=-1))
    assert counted is not None and counted.matches(fingerprint(as_float.sum(dim=-1)))  # type: ignore[arg-type]
    assert fingerprint(x != 0).matches(fingerprint(as_float))  # type: ignore[arg-type,union-attr]
    assert not counted.matches(fingerprint(as_float.sum(dim=-1) + 1))  # type: ignore[arg-type]


def test_fingerprint_tolerates_rounding_of_another_implementation() -> None:
    x = torch.randn(8, 128, 64, generator=torch.Generator().manual_seed(0))
    eager = torch.nn.functional.gelu(x, approximate="tanh")
    hand = 0.5 * x * (1.0 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x**3)))
    assert not torch.equal(eager, hand)
    assert fingerprint(eager).matches(fingerprint(hand))  # type: ignore[arg-type,union-attr]


# ------------------------------------------------------------------------------------------- regions


def test_addmm_vs_mm_add() -> None:
    assert _regions(diff_pairs.addmm_slow, diff_pairs.addmm_fast) == [(["mm", "add"], ["addmm"], True)]


def test_hand_written_vs_fused_gelu() -> None:
    hand = ["mul", "pow", "mul", "add", "mul", "tanh", "add", "mul"]
    assert _regions(diff_pairs.gelu_slow, diff_pairs.gelu_fast) == [
        (["linear"], ["linear"], True),
        (hand, ["gelu"], True),
        (["linear"], ["linear"], True),
    ]


def test_hand_written_attention_vs_sdpa() -> None:
    assert _regions(diff_pairs.attention_slow, diff_pairs.attention_fast) == [
        (["transpose", "matmul", "div", "softmax", "matmul"], ["scaled_dot_product_attention"], True)
    ]


def test_bhsd_vs_bshd_attention_layouts() -> None:
    regions = _regions(diff_pairs.layout_bhsd, diff_pairs.layout_bshd)
    assert regions == [
        (["linear"], ["linear"], True),
        (["split", "getitem", "getitem", "getitem"], ["split", "getitem", "getitem", "getitem"], True),
        (["view"], ["view"], True),
        (["transpose", "view"], ["view"], True),  # q: [B,H,S,D] on A, [B,S,H,D] on B; same values
        (["transpose", "view"], ["view"], True),
        (["transpose", "transpose", "matmul"], ["einsum"], True),  # scores, [B,H,S,S] on both
        (["mul"], ["mul"], True),
        (["softmax"], ["softmax"], True),
        (["matmul"], ["einsum"], True),  # A's output is BHSD, B's BSHD: same values
        (["transpose"], ["reshape"], True),
        (["reshape", "linear"], ["linear"], True),
    ]


def test_duplicated_useless_branch() -> None:
    assert _regions(diff_pairs.duplicate_slow, diff_pairs.duplicate_fast) == [
        (["linear"], ["linear"], True),
        (["relu"], ["relu"], True),
        (["linear"], ["linear"], True),
        (["linear", "relu", "linear", "add", "div"], [], True),  # side B gets the same values with nothing
    ]


def test_every_operator_in_exactly_one_region() -> None:
    a, b, match = _match(diff_pairs.layout_bhsd, diff_pairs.layout_bshd)
    assert sorted(i for r in match.regions for i in r.a_ops) == list(range(len(a)))
    assert sorted(j for r in match.regions for j in r.b_ops) == list(range(len(b)))


def test_unrelated_programs_leave_operators_unmatched() -> None:
    a, b, match = _match(diff_pairs.gelu_slow, diff_pairs.addmm_fast)
    assert not match.matched
    assert sorted(i for r in match.unmatched for i in r.a_ops) == list(range(len(a)))


@pytest.mark.slow
def test_gpt2_eager_vs_sdpa_isolates_attention_in_every_layer() -> None:
    transformers = pytest.importorskip("transformers")

    def gpt2(impl: str) -> object:
        def make() -> tuple[torch.nn.Module, tuple[torch.Tensor]]:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                config = transformers.GPT2Config(
                    n_layer=2, n_embd=64, n_head=4, n_positions=64, vocab_size=512, use_cache=False
                )
                config._attn_implementation = impl
                model = transformers.GPT2LMHeadModel(config).eval()
            return model, (torch.randint(0, 512, (1, 32), generator=torch.Generator().manual_seed(1)),)

        return make

    a, b, match = _match(gpt2("eager"), gpt2("sdpa"))
    for layer in range(2):
        sdpa = [
            j
            for j in range(len(b))
            if "scaled_dot_product" in b.nodes[j].op and b.nodes[j].module_path.startswith(f"transformer.h.{layer}.")
        ]
        assert len(sdpa) == 1
        region = next(r for r in match.regions if sdpa[0] in r.b_ops)
        a_ops = [short_op(a.nodes[i].op) for i in region.a_ops if not a.nodes[i].zero_cost]
        assert a_ops == ["matmul", "mul", "add", "softmax", "matmul"]
        assert all(a.nodes[i].module_path.startswith(f"transformer.h.{layer}.attn") for i in region.a_ops)
        assert [short_op(b.nodes[j].op) for j in region.b_ops] == ["scaled_dot_product_attention"]
    # Eager attention builds its causal mask in eager; eager SDPA runs with is_causal and no mask (the capture
    # follows eager, not transformers' tracing path): that mask is all that is left unmatched.
    unmatched_a = [i for r in match.unmatched for i in r.a_ops]
    assert not [j for r in match.unmatched for j in r.b_ops]
    mask_ops = {"arange", "add", "unsqueeze", "le", "expand", "zeros", "where", "full", "scalar_tensor"}
    assert {short_op(a.nodes[i].op).split(".")[0] for i in unmatched_a} <= mask_ops
    assert all(a.nodes[i].module_path == "transformer" for i in unmatched_a)
    in_matched = sum(len(r.a_ops) for r in match.matched)
    assert in_matched + len(unmatched_a) == len(a)
