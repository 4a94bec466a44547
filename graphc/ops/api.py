"""The op-building API: `F.exp(x)`, `F.sum(x, axis=1)`, `gc.softmax_cross_entropy(...)`.

Input: Tensors from a GraphBuilder (and Python scalars, lifted to constants), and the op
registry. Output: new Tensors; each call adds nodes through the registry. Op bprops are written
with these same functions, so gradient graphs can be differentiated again.

The registry owns the names: `F.<name>` is the `dsl` function of the op whose public name it is
(a hand-written function beside the op's record, where the op converts its arguments), or a
function derived from the record: its operands (named as in the op's bprop), then its
attributes with their defaults, each converted to its default's type. Helpers with no op of
their own (swapaxes, squeeze, unsqueeze, flatten, expand, split) are defined here; the NN layer
helpers are in api_nn.py.
"""
from __future__ import annotations

import builtins
import inspect
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.builder import Tensor
from graphc.errors import GraphcError, ShapeError, located
from graphc.ops.registry import REQUIRED, OpDef, all_ops, api_name, get_op


def _builder(*xs: Any):
    for x in xs:
        if isinstance(x, Tensor):
            return x.builder
    raise GraphcError("a graphc DSL function needs at least one Tensor argument")


def _apply(op: str, *xs: Any, **attrs: Any) -> Tensor:
    b = _builder(*xs)
    like = next(x for x in xs if isinstance(x, Tensor))
    return b.apply(op, [b.lift(x, like=like) for x in xs], **attrs)


def _fail(message: str, x: Tensor, op: str) -> None:
    """A build-time error at the user's line, showing the call."""
    shown = f"{op}(%{x.name}: {x.type})"
    raise ShapeError(located(message, x.builder.location(), shown))


def _axis(a: int, x: Tensor, op: str) -> int:
    if not -x.ndim <= a < x.ndim:
        _fail(f"axis {a} is out of range for a rank-{x.ndim} tensor", x, op)
    return a % x.ndim


def _axes(axis: int | Sequence[int] | None, x: Tensor, op: str) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted({_axis(a, x, op) for a in axes}))


# --- op functions derived from the records ------------------------------------------------------
_GENERIC_OPERANDS = {1: ("x",), 2: ("a", "b"), 3: ("a", "b", "c")}


def _operand_names(op: OpDef) -> tuple[str, ...]:
    """The operands' names as the op's bprop (or scalar body, or reference) calls them."""
    count = op.arity or 0
    for fn, skip in ((op.bprop, 0), (op.scalar, 1), (op.reference, 0)):
        try:
            params = list(inspect.signature(fn).parameters.values())[skip:skip + count]
        except (TypeError, ValueError):  # not a Python function (a ufunc, NOT_DIFFERENTIABLE)
            continue
        names = tuple(p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD)
        if len(names) == count and not set(names) & set(op.attrs):
            return names
    return _GENERIC_OPERANDS.get(count, tuple(f"x{i}" for i in range(count)))


def _convert(value: Any, default: Any) -> Any:
    """An attribute value in its default's type (alpha=1 -> 1.0), as the record declares it."""
    if value is None or default is None or default is REQUIRED:
        return value
    for kind in (bool, int, float):
        if isinstance(default, kind):
            return kind(value)
    return value


def _derived(op: OpDef) -> Callable[..., Tensor]:
    """`name(operands..., attrs...)` adding one `op` node, with a signature from the record."""
    p = inspect.Parameter
    operands = [p("operands", p.VAR_POSITIONAL)] if op.arity is None else \
        [p(n, p.POSITIONAL_OR_KEYWORD) for n in _operand_names(op)]
    attrs = [p(k, p.KEYWORD_ONLY if op.arity is None else p.POSITIONAL_OR_KEYWORD,
               default=p.empty if v is REQUIRED else v) for k, v in op.attrs.items()]
    signature = inspect.Signature(operands + attrs)

    def function(*args: Any, **kwargs: Any) -> Tensor:
        bound = signature.bind(*args, **kwargs).arguments
        xs = bound.pop("operands") if op.arity is None else [bound.pop(n) for n in
                                                             signature.parameters if n in bound
                                                             and n not in op.attrs]
        return _apply(op.name, *xs, **{k: _convert(v, op.attrs[k]) for k, v in bound.items()})

    function.__name__ = function.__qualname__ = op.name
    function.__module__ = __name__
    function.__signature__ = signature
    function.__doc__ = f"{op.doc} (the `{op.name}` op)"
    return function


_FUNCTIONS: dict[str, tuple[OpDef, Callable[..., Tensor]]] = {}  # by public name


def _registered(op: OpDef) -> bool:
    try:
        return get_op(op.name) is op
    except GraphcError:
        return False


def op_function(name: str) -> Callable[..., Any] | None:
    """The op API's function called `name` (an op's `dsl` or derived one), or None."""
    cached = _FUNCTIONS.get(name)
    if cached is not None and _registered(cached[0]):
        return cached[1]
    op = next((o for o in all_ops().values() if api_name(o) == name), None)
    if op is None:
        _FUNCTIONS.pop(name, None)
        return None
    function = op.dsl if op.dsl is not None else _derived(op)
    _FUNCTIONS[name] = (op, function)
    return function


def op_names() -> list[str]:
    """Every public op's name in the op API."""
    return sorted(n for op in all_ops().values() if (n := api_name(op)) is not None)


def __getattr__(name: str) -> Callable[..., Any]:
    function = op_function(name) if not name.startswith("__") else None
    if function is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return function


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(op_names()))


# --- shape helpers with no op of their own: reshapes, transposes and slices ---------------------
def swapaxes(x: Tensor, a: int, b: int) -> Tensor:
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return _apply("transpose", x, perm=tuple(perm))


def squeeze(x: Tensor, axes: int | Sequence[int] | None = None) -> Tensor:
    """Drop size-1 axes (all of them when `axes` is None)."""
    drop = [a for a in range(x.ndim) if x.shape[a] == 1] if axes is None else \
        _axes(axes, x, "squeeze")
    if any(x.shape[a] != 1 for a in drop):
        _fail(f"squeeze: axes {drop} are not all of size 1", x, "squeeze")
    return _apply("reshape", x, shape=tuple(d for a, d in enumerate(x.shape) if a not in drop))


def unsqueeze(x: Tensor, axes: int | Sequence[int]) -> Tensor:
    """Insert size-1 axes at `axes` (positions in the result, negatives allowed)."""
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    rank = x.ndim + len(axes)
    where = sorted(a % rank for a in axes)
    dims = iter(x.shape)
    return _apply("reshape", x, shape=tuple(1 if a in where else next(dims) for a in range(rank)))


def flatten(x: Tensor, axis: int = 1) -> Tensor:
    """ONNX Flatten: [prod(shape[:axis]), prod(shape[axis:])]."""
    axis = axis % (x.ndim + 1) if axis < 0 else axis
    return _apply("reshape", x, shape=(math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


def expand(x: Tensor, shape: Sequence[int]) -> Tensor:
    """ONNX Expand: bidirectional broadcast of x and `shape`."""
    target = np.broadcast_shapes(tuple(x.shape), tuple(shape))
    return _apply("broadcast_to", x, shape=tuple(target))


def split(x: Tensor, sizes: Sequence[int] | int, axis: int = 0) -> tuple[Tensor, ...]:
    """ONNX Split as slices: `sizes` per part, or a number of equal parts."""
    axis = _axis(axis, x, "split")
    if isinstance(sizes, int):
        if x.shape[axis] % sizes:
            _fail(f"cannot split {x.shape[axis]} into {sizes} equal parts", x, "split")
        sizes = [x.shape[axis] // sizes] * sizes
    if builtins.sum(sizes) != x.shape[axis]:
        _fail(f"split sizes {list(sizes)} do not add up to {x.shape[axis]}", x, "split")
    bounds = np.cumsum([0, *sizes]).tolist()
    return tuple(_apply("slice", x, starts=(lo,), ends=(hi,), axes=(axis,))
                 for lo, hi in itertools.pairwise(bounds))


def defined_here(namespace: dict[str, Any]) -> list[str]:
    """The public functions a module defines itself (its `__all__`)."""
    module = namespace["__name__"]
    return sorted(n for n, v in namespace.items() if not n.startswith("_") and
                  inspect.isfunction(v) and v.__module__ == module)


__all__ = [n for n in defined_here(globals())
           if n not in ("op_function", "op_names", "defined_here")]
