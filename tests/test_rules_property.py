"""Property: no rule crashes (or emits code that does not parse) on generated torch-flavoured Python source."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from magneton.fix.apply import fix_text
from magneton.rules import load_rules
from magneton.rules.source import lint_text

RULES = list(load_rules().select(experimental=True))
NAMES = st.sampled_from(["x", "y", "q", "k", "v", "mask", "self.weight", "self.lm_head", "h", "scores", "model"])
FUNCS = st.sampled_from(
    [
        "torch.softmax", "F.softmax", "torch.log", "torch.tanh", "torch.matmul", "torch.mm", "torch.bmm", "torch.cat",
        "torch.stack", "torch.sort", "torch.argsort", "torch.zeros", "torch.zeros_like", "torch.where", "torch.rsqrt",
        "torch.sqrt", "torch.pow", "torch.linalg.eigvals", "torch.linalg.inv", "torch.diag", "torch.trace",
        "torch.argmax", "torch.nonzero", "F.nll_loss", "F.log_softmax", "F.linear", "torch.sum", "DataLoader",
        "torch.autograd.set_detect_anomaly", "F.scaled_dot_product_attention", "torch.repeat_interleave",
        "len", "range",
    ]
)  # fmt: skip
METHODS = st.sampled_from(
    [
        "float", "to", "cuda", "clone", "contiguous", "t", "transpose", "softmax", "sum", "mean", "pow", "item",
        "tolist", "cpu", "argmax", "log", "split", "chunk", "values", "T", "mT", "expand", "reshape", "zero_grad",
        "diagonal", "size", "shape", "type_as", "half", "eval",
    ]
)  # fmt: skip
LITERALS = st.sampled_from(
    ["0", "1", "-1", "-2", "2", "3", "0.5", "0.044715", "True", "False", "None", '"cuda"', "..."]
)


def _expressions() -> st.SearchStrategy[str]:
    leaves = st.one_of(NAMES, LITERALS)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        args = st.lists(
            st.one_of(
                inner,
                st.builds(
                    lambda k, v: f"{k}={v}",
                    st.sampled_from(
                        ["dim", "keepdim", "device", "descending", "dtype", "num_workers", "set_to_none", "out"]
                    ),
                    inner,
                ),
            ),
            max_size=3,
        )  # noqa: E501
        return st.one_of(
            st.builds(lambda f, a: f"{f}({', '.join(a)})", FUNCS, args),
            st.builds(lambda r, m, a: f"({r}).{m}({', '.join(a)})", inner, METHODS, args),
            st.builds(lambda r, m: f"({r}).{m}", inner, METHODS),
            st.builds(
                lambda a, op, b: f"({a} {op} {b})",
                inner,
                st.sampled_from(["+", "-", "*", "/", "@", "**", "!=", ">"]),
                inner,
            ),  # noqa: E501
            st.builds(
                lambda r, i: f"({r})[{i}]",
                inner,
                st.sampled_from([":, -1, :", "..., :3", "0", "i", ":", "...", ":, :k"]),
            ),  # noqa: E501
            st.builds(
                lambda e, r: f"[{e} for i in {r}]", inner, st.sampled_from(["range(x.shape[0])", "self.heads", "xs"])
            ),  # noqa: E501
        )

    return st.recursive(leaves, extend, max_leaves=12)


def _statement(expression: str, kind: int, target: str) -> str:
    if kind == 0:
        return f"{target} = {expression}\n"
    if kind == 1:
        return f"for i in range(3):\n    {target} = {expression}\n"
    if kind == 2:
        return f"def forward(self, x):\n    {target} = {expression}\n    return {target}\n"
    return f"with torch.no_grad():\n    {expression}\n"


PROGRAMS = st.lists(
    st.builds(_statement, _expressions(), st.integers(0, 3), st.sampled_from(["x", "y", "out", "buf"])),
    min_size=1,
    max_size=6,
).map(
    lambda body: (
        "import torch\nimport torch.nn.functional as F\nfrom torch.utils.data import DataLoader\n" + "".join(body)
    )
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PROGRAMS)
def test_no_rule_crashes_and_fixes_parse(code: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        try:
            compile(code, "generated.py", "exec")
        except SyntaxError:
            assume(False)  # libcst accepts a few things Python's compiler rejects (repeated keywords)
    result = lint_text(code, "generated.py", RULES)
    assert result.error is None or "cannot parse" in result.error, result.error
    if result.error is None:
        fixed = fix_text(code, "generated.py", RULES)
        assert fixed.error is None, fixed.error
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            compile(fixed.fixed, "generated.py", "exec")
        assert not fix_text(fixed.fixed, "generated.py", RULES).changed
