"""Loading targets: every way a target can be wrong gets its own message naming the target."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from magneton import Workload
from magneton.errors import MagnetonError, WorkloadError
from magneton.workload import load_target, split_target, validate_workload

MODEL_FILE = textwrap.dedent("""
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x, scale=1.0):
            return self.lin(x) * scale


    def helper():
        return 1


    def _private():
        return 2
""")


def load_error(target: str) -> WorkloadError:
    with pytest.raises(WorkloadError) as info:
        load_target(target)
    err = info.value
    # Every WorkloadError names the target, in the attribute and in the message.
    assert err.target == target
    assert str(err).startswith(f"target {target!r}: ")
    assert isinstance(err, MagnetonError)
    return err


# --- target syntax ------------------------------------------------------------------------------


def test_split_target_uses_last_colon() -> None:
    assert split_target("C:/models/net.py:workload") == ("C:/models/net.py", "workload")
    assert split_target("pkg.mod:fn") == ("pkg.mod", "fn")


@pytest.mark.parametrize("target", ["model.py", "model.py:", ":workload"])
def test_target_without_function_is_rejected(target: str) -> None:
    err = load_error(target)
    assert err.problem == "expected 'path/to/file.py:function' or 'package.module:function'"


def test_function_name_must_be_identifier() -> None:
    err = load_error("model.py:not-a-name")
    assert err.problem == "'not-a-name' is not a Python function name"


# --- loader errors ------------------------------------------------------------------------------


def test_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.py"
    err = load_error(f"{missing}:workload")
    assert err.problem.startswith(f"file not found: {missing}")


def test_file_not_python(tmp_path: Path) -> None:
    path = tmp_path / "model.txt"
    path.write_text("x = 1\n")
    err = load_error(f"{path}:workload")
    assert err.problem == f"{path} is not a Python file (.py)"


def test_module_missing() -> None:
    err = load_error("no_such_package_for_magneton_tests.models:workload")
    assert err.problem == "no module named 'no_such_package_for_magneton_tests' (not a file path either)"


def test_submodule_missing() -> None:
    err = load_error("magneton.no_such_module:workload")
    assert "no module named 'magneton.no_such_module'" in err.problem


def test_module_whose_own_import_fails_is_not_reported_as_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "wrapper_pkg_for_tests.py").write_text("import dependency_that_is_not_installed_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    err = load_error("wrapper_pkg_for_tests:workload")
    assert err.problem.startswith("importing wrapper_pkg_for_tests raised ModuleNotFoundError:")
    assert "dependency_that_is_not_installed_xyz" in err.problem


def test_function_missing_lists_available_callables(write_target) -> None:
    target = write_target(MODEL_FILE, function="workload")
    err = load_error(target)
    where = target.rpartition(":")[0]
    # Public callables defined in the file, sorted; imported names (torch, nn) and _private are not listed.
    assert err.problem == f"no function 'workload' in {where}; callables defined there: Net, helper"


def test_function_missing_in_module_target_lists_callables() -> None:
    err = load_error("magneton.examples.tiny_gpt:no_such_factory")
    assert err.problem == (
        "no function 'no_such_factory' in magneton.examples.tiny_gpt; callables defined there: "
        "Block, CausalSelfAttention, MLP, TinyGPT, build_tiny_gpt, train_workload, workload"
    )


def test_function_missing_with_no_callables_has_no_hint(write_target) -> None:
    target = write_target("VALUE = 3\n", function="workload")
    err = load_error(target)
    assert err.problem == f"no function 'workload' in {target.rpartition(':')[0]}"


def test_target_attribute_is_not_callable(write_target) -> None:
    target = write_target("workload = 3\n")
    err = load_error(target)
    assert err.problem == f"'workload' in {target.rpartition(':')[0]} is a int, not a function"


def test_function_raised_shows_user_exception_and_traceback_tail(write_target, marker_line) -> None:
    target = write_target("""
        def build():
            raise ValueError("the checkpoint is corrupt")  # RAISE-HERE


        def workload():
            return build()
    """)
    path = target.rpartition(":")[0]
    err = load_error(target)
    assert err.problem.startswith("workload() raised ValueError:\n")
    assert "ValueError: the checkpoint is corrupt" in err.problem
    # The tail names the user's file, the line that raised, and shows that line.
    assert f'File "{path}", line {marker_line(path, "RAISE-HERE")}, in build' in err.problem
    assert 'raise ValueError("the checkpoint is corrupt")' in err.problem
    assert isinstance(err.__cause__, ValueError)


def test_function_raised_type_error_inside_is_not_blamed_on_arguments(write_target) -> None:
    target = write_target("""
        def workload():
            return len(5)
    """)
    err = load_error(target)
    assert err.problem.startswith("workload() raised TypeError:\n")
    assert "object of type 'int' has no len()" in err.problem


def test_function_that_takes_arguments(write_target) -> None:
    target = write_target("""
        def workload(batch_size):
            return None
    """)
    err = load_error(target)
    assert err.problem.startswith("workload() must take no arguments: ")
    assert "batch_size" in err.problem


def test_importing_file_raised(write_target, marker_line) -> None:
    target = write_target("""
        import math

        SIZE = math.sqrt(-1)  # IMPORT-FAILS


        def workload():
            return None
    """)
    path = target.rpartition(":")[0]
    err = load_error(target)
    assert err.problem.startswith(f"importing {path} raised ValueError:\n")
    assert "ValueError: math domain error" in err.problem or "ValueError: expected a nonnegative" in err.problem
    assert f'File "{path}", line {marker_line(path, "IMPORT-FAILS")}, in <module>' in err.problem


def test_failed_file_import_does_not_leak_module_or_sys_path(write_target) -> None:
    import sys

    before_path = list(sys.path)
    before_modules = {m for m in sys.modules if m.startswith("_magneton_target_")}
    target = write_target("raise RuntimeError('nope')\n")
    load_error(target)
    assert sys.path == before_path
    assert {m for m in sys.modules if m.startswith("_magneton_target_")} == before_modules


# --- what the function returned -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "shape"),
    [
        ("return torch.ones(2)", "Tensor"),
        ("return None", "NoneType"),
        ("return (Net(), (torch.ones(1, 4),), {}, 'extra')", "a tuple of 4"),
        ("return (Net(),)", "a tuple of 1"),
        ("return [Net(), (torch.ones(1, 4),)]", "list"),
    ],
)
def test_wrong_return_shape(write_target, body: str, shape: str) -> None:
    target = write_target(MODEL_FILE + f"\n\ndef workload():\n    {body}\n")
    err = load_error(target)
    assert (
        err.problem == f"returned {shape}; expected (callable, args), (callable, args, kwargs), a magneton.Workload "
        "or a magneton.TrainStep"
    )


def test_args_not_a_tuple(write_target) -> None:
    target = write_target(MODEL_FILE + "\n\ndef workload():\n    return Net(), torch.ones(1, 4)\n")
    err = load_error(target)
    assert err.problem == "args must be a tuple of inputs, got Tensor; wrap a single tensor as (x,)"


def test_kwargs_not_a_dict(write_target) -> None:
    target = write_target(MODEL_FILE + "\n\ndef workload():\n    return Net(), (torch.ones(1, 4),), [2.0]\n")
    err = load_error(target)
    assert err.problem == "kwargs must be a dict, got list"


def test_numpy_input_suggests_from_numpy(write_target) -> None:
    target = write_target(
        MODEL_FILE + "\nimport numpy as np\n\n\ndef workload():\n"
        "    return Net(), (np.ones((1, 4), dtype='float32'),)\n"
    )
    err = load_error(target)
    assert err.problem == (
        "input args[0] is a numpy.ndarray; inputs must be torch.Tensors (or plain Python "
        "scalars); convert it with torch.from_numpy"
    )


def test_numpy_kwarg_is_located() -> None:
    with pytest.raises(WorkloadError) as info:
        validate_workload("t.py:f", (nn.Linear(4, 4), (torch.ones(1, 4),), {"mask": np.ones(4)}))
    assert "input kwargs['mask'] is a numpy.ndarray" in info.value.problem
    assert "torch.from_numpy" in info.value.problem


def test_nested_bad_input_is_located() -> None:
    with pytest.raises(WorkloadError) as info:
        validate_workload("t.py:f", (nn.Linear(4, 4), ([torch.ones(1), {"k": object()}],)))
    assert info.value.problem == (
        "input args[0][1]['k'] is a builtins.object; inputs must be torch.Tensors (or plain Python scalars)"
    )


def test_no_tensor_input(write_target) -> None:
    target = write_target(MODEL_FILE + "\n\ndef workload():\n    return Net(), (1, 2.0)\n")
    err = load_error(target)
    assert err.problem == "no input is a torch.Tensor; return example tensors to run the model on"


def test_first_element_not_callable(write_target) -> None:
    target = write_target(MODEL_FILE + "\n\ndef workload():\n    return 'Net', (torch.ones(1, 4),)\n")
    err = load_error(target)
    assert err.problem == "the first element must be callable (an nn.Module or function), got str"


def test_workload_with_non_callable_fn_is_rejected() -> None:
    with pytest.raises(WorkloadError, match="the first element must be callable"):
        validate_workload("t.py:f", Workload(42, (torch.ones(1),)))  # type: ignore[arg-type]


def test_workload_with_numpy_input_is_rejected() -> None:
    with pytest.raises(WorkloadError, match="torch.from_numpy"):
        validate_workload("t.py:f", Workload(nn.Linear(1, 1), (np.ones(1),)))


# --- success --------------------------------------------------------------------------------------


def test_file_target_two_tuple(write_target) -> None:
    target = write_target(MODEL_FILE + "\n\ndef workload():\n    return Net().eval(), (torch.ones(2, 4),)\n")
    workload = load_target(target)
    assert isinstance(workload, Workload)
    assert type(workload.fn).__name__ == "Net"
    assert len(workload.args) == 1 and workload.args[0].shape == (2, 4)
    assert workload.kwargs == {}
    assert workload.fn(*workload.args).shape == (2, 4)


def test_list_args_become_a_tuple(write_target) -> None:
    target = write_target(MODEL_FILE + "\n\ndef workload():\n    return Net(), [torch.ones(2, 4)]\n")
    workload = load_target(target)
    assert isinstance(workload.args, tuple) and len(workload.args) == 1


def test_file_target_three_tuple_with_kwargs(write_target) -> None:
    target = write_target(MODEL_FILE + "\n\ndef workload():\n    return Net(), (torch.ones(2, 4),), {'scale': 2.0}\n")
    workload = load_target(target)
    assert workload.kwargs == {"scale": 2.0}
    assert isinstance(workload.kwargs, dict)


def test_file_target_returning_workload(write_target) -> None:
    target = write_target(
        MODEL_FILE + "\nfrom magneton import Workload\n\n\ndef workload():\n"
        "    return Workload(Net(), (torch.ones(3, 4),), {'scale': 0.5})\n"
    )
    workload = load_target(target)
    assert isinstance(workload, Workload)
    assert workload.args[0].shape == (3, 4)
    assert workload.kwargs == {"scale": 0.5}


def test_plain_function_workload(write_target) -> None:
    target = write_target("""
        import torch


        def f(x, y):
            return x @ y


        def workload():
            return f, (torch.ones(2, 3), torch.ones(3, 2))
    """)
    workload = load_target(target)
    assert workload.fn.__name__ == "f"
    assert torch.equal(workload.fn(*workload.args), torch.full((2, 2), 3.0))


def test_file_target_may_import_its_siblings(tmp_path: Path, write_target) -> None:
    (tmp_path / "sibling_layers_for_tests.py").write_text(
        "from torch import nn\n\n\ndef make():\n    return nn.Linear(4, 2)\n"
    )
    target = write_target("""
        import torch
        from sibling_layers_for_tests import make


        def workload():
            return make(), (torch.ones(1, 4),)
    """)
    workload = load_target(target)
    assert isinstance(workload.fn, nn.Linear) and workload.fn.out_features == 2


def test_relative_file_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rel_model.py").write_text(
        "import torch\n\n\ndef workload():\n    return torch.relu, (torch.ones(2),)\n"
    )
    monkeypatch.chdir(tmp_path)
    workload = load_target("rel_model.py:workload")
    assert workload.fn is torch.relu


def test_module_target_bundled_example() -> None:
    workload = load_target("magneton.examples.tiny_gpt:workload")
    assert type(workload.fn).__name__ == "TinyGPT"
    assert not workload.fn.training
    (input_ids,) = workload.args
    assert input_ids.shape == (4, 128) and input_ids.dtype == torch.int64
    assert workload.kwargs == {}


# --- known gaps (see the reasons) ----------------------------------------------------------------


def test_workload_with_tensor_args_is_rejected() -> None:
    with pytest.raises(WorkloadError, match="args must be a tuple of inputs"):
        validate_workload("t.py:f", Workload(nn.Linear(4, 4), torch.ones(2, 4)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "source",
    [
        "import sys\n\nsys.exit(0)\n",
        "import sys\n\n\ndef workload():\n    sys.exit(0)\n",
    ],
)
def test_target_calling_sys_exit_is_a_workload_error(write_target, source: str) -> None:
    target = write_target(source)
    try:
        load_error(target)
    except SystemExit:
        pytest.fail("SystemExit escaped load_target")
