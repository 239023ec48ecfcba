"""Loading a target (``file.py:fn`` or ``pkg.module:fn``) into a Workload.

Magneton never guesses: every way a target can be wrong gets its own message
naming the target and what was expected.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magneton.errors import WorkloadError

EXPECTED_RETURN = "(callable, args), (callable, args, kwargs), a magneton.Workload or a magneton.TrainStep"
_SCALAR_TYPES = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class Workload:
    """A callable and the example inputs to profile it with."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainStep:
    """One training step to profile: forward, loss, backward and (with an optimizer) the optimizer step.

    ``loss_fn`` turns the model's output into the scalar loss (labels close over it:
    ``lambda out: F.cross_entropy(out, labels)``). Instead, ``compute_loss(model, *args, **kwargs)``
    may run the model itself and return the loss. ``autocast_dtype`` runs forward and loss under
    ``torch.autocast`` with that dtype. ``scaler`` (a ``torch.amp.GradScaler``, with an optimizer) makes
    the step the mixed-precision one: scale the loss, backward, unscale and check for inf/NaN, the
    optimizer step through the scaler, ``update()``. The user's model, optimizer and scaler are never
    modified: Magneton trains copies of the parameters, of the optimizer state and of the scaler.
    """

    model: Any  # torch.nn.Module with at least one parameter that requires grad
    args: tuple[Any, ...] = ()
    loss_fn: Callable[[Any], Any] | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    optimizer: Any = None  # torch.optim.Optimizer over (some of) the model's parameters
    compute_loss: Callable[..., Any] | None = None
    autocast_dtype: Any = None  # torch.dtype, e.g. torch.bfloat16
    scaler: Any = None  # torch.amp.GradScaler (or torch.cuda.amp.GradScaler), enabled; needs an optimizer


def split_target(target: str) -> tuple[str, str]:
    """Split ``where:function`` at the last colon (file paths may contain colons)."""
    where, sep, function = target.rpartition(":")
    if not sep or not where or not function:
        raise WorkloadError(target, "expected 'path/to/file.py:function' or 'package.module:function'")
    if not function.isidentifier():
        raise WorkloadError(target, f"{function!r} is not a Python function name")
    return where, function


def _traceback_tail(err: BaseException, frames: int = 4) -> str:
    lines = traceback.format_exception(type(err), err, err.__traceback__)
    body = "".join(lines[-(frames * 2 + 1) :]).rstrip()
    return "\n".join("    " + line for line in body.splitlines())


def _import_file(target: str, path: Path) -> Any:
    if not path.is_file():
        raise WorkloadError(target, f"file not found: {path} (resolved to {path.resolve()})")
    if path.suffix != ".py":
        raise WorkloadError(target, f"{path} is not a Python file (.py)")
    module_name = f"_magneton_target_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise WorkloadError(target, f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # The user's file may import its siblings, as it would when run as a script.
    sys.path.insert(0, str(path.resolve().parent))
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as err:  # a script's sys.exit() must not end a whole batch
        sys.modules.pop(module_name, None)
        raise WorkloadError(target, f"importing {path} raised {type(err).__name__}:\n{_traceback_tail(err)}") from err
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _import_module(target: str, name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):
            raise WorkloadError(target, f"no module named {err.name!r} (not a file path either)") from err
        raise WorkloadError(target, f"importing {name} raised ModuleNotFoundError:\n{_traceback_tail(err)}") from err
    except (Exception, SystemExit) as err:
        raise WorkloadError(target, f"importing {name} raised {type(err).__name__}:\n{_traceback_tail(err)}") from err


def _looks_like_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def load_target(target: str) -> Workload:
    """Import the target, call its function, and validate what it returned (an inference workload)."""
    loaded = load_any_target(target)
    if isinstance(loaded, TrainStep):
        raise WorkloadError(
            target, "returned a magneton.TrainStep; this command profiles inference only (use magneton analyze)"
        )
    return loaded


def load_any_target(target: str) -> Workload | TrainStep:
    """Import the target, call its function, and validate what it returned: a Workload or a TrainStep."""
    where, function = split_target(target)
    module = _import_file(target, Path(where)) if _looks_like_file(where) else _import_module(target, where)
    factory = getattr(module, function, None)
    if factory is None:
        available = sorted(
            n
            for n, v in vars(module).items()
            if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
        )
        hint = f"; callables defined there: {', '.join(available)}" if available else ""
        raise WorkloadError(target, f"no function {function!r} in {where}{hint}")
    if not callable(factory):
        raise WorkloadError(target, f"{function!r} in {where} is a {type(factory).__name__}, not a function")
    try:
        returned = factory()
    except TypeError as err:
        if "argument" in str(err) and err.__traceback__ is not None and err.__traceback__.tb_next is None:
            raise WorkloadError(target, f"{function}() must take no arguments: {err}") from err
        raise WorkloadError(target, f"{function}() raised TypeError:\n{_traceback_tail(err)}") from err
    except (Exception, SystemExit) as err:
        raise WorkloadError(target, f"{function}() raised {type(err).__name__}:\n{_traceback_tail(err)}") from err
    if isinstance(returned, TrainStep):
        return validate_train_step(target, returned)
    return validate_workload(target, returned)


def validate_workload(target: str, returned: Any) -> Workload:
    """Turn a factory's return value into a Workload, or say exactly what is wrong."""
    if isinstance(returned, Workload):
        fn, args, kwargs = returned.fn, returned.args, returned.kwargs
    elif isinstance(returned, tuple) and len(returned) in (2, 3):
        fn, args = returned[0], returned[1]
        kwargs = returned[2] if len(returned) == 3 else {}
    else:
        shape = f"a tuple of {len(returned)}" if isinstance(returned, tuple) else type(returned).__name__
        raise WorkloadError(target, f"returned {shape}; expected {EXPECTED_RETURN}")
    if isinstance(args, list):
        args = tuple(args)
    if isinstance(args, Mapping):
        raise WorkloadError(
            target,
            "the second element is a dict, but it holds positional args; for keyword arguments "
            "return (model, (), {...}) or (model, args, kwargs)",
        )
    if not isinstance(args, tuple):
        raise WorkloadError(
            target, f"args must be a tuple of inputs, got {type(args).__name__}; wrap a single tensor as (x,)"
        )
    if not isinstance(kwargs, Mapping):
        raise WorkloadError(target, f"kwargs must be a dict, got {type(kwargs).__name__}")
    workload = Workload(fn, args, dict(kwargs))
    if not callable(workload.fn):
        raise WorkloadError(
            target, f"the first element must be callable (an nn.Module or function), got {type(workload.fn).__name__}"
        )
    _check_inputs(target, workload)
    return workload


def _check_inputs(target: str, workload: Workload) -> None:
    import torch

    from magneton.capture.torch_compat import tree_flatten_with_path

    leaves, _ = tree_flatten_with_path((workload.args, dict(workload.kwargs)))
    tensors = 0
    for path, leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            tensors += 1
            fake = type(leaf).__name__ == "FakeTensor"
            if leaf.is_meta or fake:
                raise WorkloadError(
                    target,
                    f"input {_input_name(path)} is a {'fake' if fake else 'meta'} tensor; inputs must be real "
                    "tensors with data (create them with torch.randn or load real data)",
                )
        elif not isinstance(leaf, _SCALAR_TYPES):
            where = _input_name(path)
            hint = "; convert it with torch.from_numpy" if type(leaf).__module__ == "numpy" else ""
            raise WorkloadError(
                target,
                f"input {where} is a {type(leaf).__module__}.{type(leaf).__name__}; "
                f"inputs must be torch.Tensors (or plain Python scalars){hint}",
            )
    if tensors == 0:
        raise WorkloadError(target, "no input is a torch.Tensor; return example tensors to run the model on")
    if isinstance(workload.fn, torch.nn.Module):
        for name, tensor in [*workload.fn.named_parameters(), *workload.fn.named_buffers()]:
            if tensor.is_meta or type(tensor).__name__ == "FakeTensor":
                raise WorkloadError(
                    target,
                    f"the model's {name} is on the meta device (e.g. built under init_empty_weights or "
                    "device='meta'); inputs and parameters must be real tensors: load real weights",
                )


def validate_train_step(target: str, step: TrainStep) -> TrainStep:
    """Check a TrainStep without running it: a model with trainable parameters, a loss, an optimizer that fits.

    Whether the loss is a scalar is only known by running it: :func:`magneton.capture.training.check_loss`.
    """
    import torch

    if not isinstance(step.model, torch.nn.Module):
        raise WorkloadError(target, f"TrainStep.model must be a torch.nn.Module, got {type(step.model).__name__}")
    if (step.loss_fn is None) == (step.compute_loss is None):
        raise WorkloadError(
            target,
            "TrainStep needs exactly one of loss_fn (model output -> scalar loss) or "
            "compute_loss (model, *args, **kwargs -> scalar loss)",
        )
    for name in ("loss_fn", "compute_loss"):
        value = getattr(step, name)
        if value is not None and not callable(value):
            raise WorkloadError(target, f"TrainStep.{name} must be callable, got {type(value).__name__}")
    trainable = [p for p in step.model.parameters() if p.requires_grad]
    if not trainable:
        count = sum(1 for _ in step.model.parameters())
        why = "it has no parameters" if count == 0 else f"all {count} of its parameters have requires_grad=False"
        raise WorkloadError(
            target, f"the model has no trainable parameters ({why}); a training step would compute no gradient"
        )
    if step.autocast_dtype is not None and not isinstance(step.autocast_dtype, torch.dtype):
        raise WorkloadError(
            target, f"TrainStep.autocast_dtype must be a torch.dtype (e.g. torch.bfloat16), got {step.autocast_dtype!r}"
        )
    if step.optimizer is not None:
        if not isinstance(step.optimizer, torch.optim.Optimizer):
            raise WorkloadError(
                target, f"TrainStep.optimizer must be a torch.optim.Optimizer, got {type(step.optimizer).__name__}"
            )
        owned = {id(p) for p in step.model.parameters()}
        held = [p for group in step.optimizer.param_groups for p in group["params"]]
        foreign = [p for p in held if id(p) not in owned]
        if foreign:
            raise WorkloadError(
                target,
                f"the optimizer holds {len(foreign)} tensor(s) that are not parameters of the model "
                f"(first: shape {list(foreign[0].shape)}); build it from model.parameters() of the same model "
                "(an optimizer made before model.to(...) or for a copy of the model does not own its parameters)",
            )
        if not any(id(p) in {id(t) for t in trainable} for p in held):
            raise WorkloadError(target, "the optimizer owns none of the model's trainable parameters")
    if step.scaler is not None:
        _check_scaler(target, step)
    args = tuple(step.args) if isinstance(step.args, (list, tuple)) else (step.args,)
    checked = validate_workload(target, (step.model, args, dict(step.kwargs)))
    return TrainStep(
        model=step.model,
        args=checked.args,
        loss_fn=step.loss_fn,
        kwargs=dict(checked.kwargs),
        optimizer=step.optimizer,
        compute_loss=step.compute_loss,
        autocast_dtype=step.autocast_dtype,
        scaler=step.scaler,
    )


def _check_scaler(target: str, step: TrainStep) -> None:
    """A GradScaler that can run the step: enabled, with an optimizer, for the parameters' device, between steps."""
    import torch

    from magneton.capture.torch_compat import grad_scaler_device_type, grad_scaler_mid_iteration

    scaler = step.scaler
    if not isinstance(scaler, torch.amp.GradScaler):
        raise WorkloadError(
            target,
            f"TrainStep.scaler must be a torch.amp.GradScaler, got {type(scaler).__module__}.{type(scaler).__name__}",
        )
    device_type = grad_scaler_device_type(scaler)
    if not scaler.is_enabled():
        why = (
            "; torch.cuda.amp.GradScaler and GradScaler('cuda') disable themselves when CUDA is not available: "
            "on the CPU use torch.amp.GradScaler('cpu')"
            if device_type == "cuda" and not torch.cuda.is_available()
            else ""
        )
        raise WorkloadError(
            target, f"TrainStep.scaler is disabled (enabled=False): it would scale nothing; pass scaler=None{why}"
        )
    if step.optimizer is None:
        raise WorkloadError(
            target,
            "TrainStep.scaler needs TrainStep.optimizer: a GradScaler unscales the gradients and steps an optimizer "
            "(scaler.step(optimizer)); pass the optimizer too, or drop the scaler",
        )
    params = [p for p in step.model.parameters() if p.requires_grad]
    param_device = params[0].device.type if params else "cpu"
    if device_type != param_device:
        raise WorkloadError(
            target,
            f"TrainStep.scaler was built for {device_type!r} but the parameters are on {param_device!r}; "
            f"build it with torch.amp.GradScaler({param_device!r})",
        )
    half = [p for p in params if p.dtype == torch.float16]
    if half:
        raise WorkloadError(
            target,
            f"{len(half)} trainable parameter(s) are float16 (first: shape {list(half[0].shape)}); a GradScaler "
            "cannot unscale float16 gradients. Keep float32 parameters and set autocast_dtype=torch.float16 "
            "(the forward then runs in float16, the gradients arrive in float32)",
        )
    if grad_scaler_mid_iteration(scaler):
        raise WorkloadError(
            target,
            "TrainStep.scaler is in the middle of an iteration (unscale_() or step() ran without update()); "
            "pass it between iterations, after scaler.update()",
        )


def sum_of_float_outputs(output: Any) -> Any:
    """The ``--train`` loss of a plain ``(model, args)`` target: the sum of every floating-point output element."""
    from magneton.capture.values import tensor_leaves

    floats = [t for t in tensor_leaves(output) if t.is_floating_point()]
    if not floats:
        raise TypeError("the model returned no floating-point tensor to sum into a loss")
    total = floats[0].float().sum()
    for tensor in floats[1:]:
        total = total + tensor.float().sum()
    return total


def train_step_of(target: str, workload: Workload) -> TrainStep:
    """``--train`` on a plain target: its model trained on the sum of its float outputs, with no optimizer."""
    return validate_train_step(
        target, TrainStep(model=workload.fn, args=workload.args, kwargs=workload.kwargs, loss_fn=sum_of_float_outputs)
    )


def _input_name(path: Any) -> str:
    from magneton.capture.torch_compat import keystr

    return ("args" if path[0].idx == 0 else "kwargs") + keystr(path[1:])


def move_workload(workload: Workload, device: str, target: str = "<workload>") -> Workload:
    """The workload with its module and tensor inputs moved to ``device``; a CUDA device this process lacks is a
    WorkloadError naming ``target``."""
    import torch

    from magneton.capture.torch_compat import tree_map

    if device.startswith("cuda") and not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise WorkloadError(target, f"--device {device} requested, but {why}; run on the CPU (--device cpu)")

    def move(value: Any) -> Any:
        return value.to(device) if isinstance(value, torch.Tensor) else value

    fn = workload.fn.to(device) if isinstance(workload.fn, torch.nn.Module) else workload.fn
    args, kwargs = tree_map(move, (workload.args, dict(workload.kwargs)))
    return Workload(fn, tuple(args), kwargs)
