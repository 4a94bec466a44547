"""The functional DSL: `gc.exp(x)`, `gc.sum(x, axis=1)`, `gc.softmax_cross_entropy(...)`.

Input: Tensors from a GraphBuilder (and Python scalars, lifted to constants).
Output: new Tensors; each call adds one node through the op registry. Op bprops are written with
these same functions, so gradient graphs can be differentiated again.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphc.builder import Tensor
from graphc.errors import GraphcError, ShapeError, located
from graphc.types import dtype_name


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


# --- elementwise ----------------------------------------------------------------------------
def add(a, b): return _apply("add", a, b)
def sub(a, b): return _apply("sub", a, b)
def mul(a, b): return _apply("mul", a, b)
def div(a, b): return _apply("div", a, b)
def pow(a, b): return _apply("pow", a, b)
def maximum(a, b): return _apply("maximum", a, b)
def minimum(a, b): return _apply("minimum", a, b)
def neg(x): return _apply("neg", x)
def exp(x): return _apply("exp", x)
def log(x): return _apply("log", x)
def tanh(x): return _apply("tanh", x)
def sigmoid(x): return _apply("sigmoid", x)
def relu(x): return _apply("relu", x)
def sqrt(x): return _apply("sqrt", x)
def equal(a, b): return _apply("equal", a, b)
def not_equal(a, b): return _apply("not_equal", a, b)
def less(a, b): return _apply("less", a, b)
def less_equal(a, b): return _apply("less_equal", a, b)
def greater(a, b): return _apply("greater", a, b)
def greater_equal(a, b): return _apply("greater_equal", a, b)
def stop_gradient(x): return _apply("stop_gradient", x)


def where(cond, a, b) -> Tensor:
    """Elementwise select with broadcasting; scalars take the dtype of the other branch."""
    bld = _builder(cond, a, b)
    like = a if isinstance(a, Tensor) else b
    return bld.apply("where", [bld.lift(cond), bld.lift(a, like=like), bld.lift(b, like=like)])


def cast(x: Tensor, dtype: str) -> Tensor:
    try:
        to = dtype_name(dtype)
    except GraphcError as err:
        _fail(str(err), x, "cast")
    return _apply("cast", x, to=to)


# --- reductions ------------------------------------------------------------------------------
def sum(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return _apply("sum", x, axes=_axes(axis, x, "sum"), keepdims=keepdims)


def mean(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return _apply("mean", x, axes=_axes(axis, x, "mean"), keepdims=keepdims)


def max(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return _apply("max", x, axes=_axes(axis, x, "max"), keepdims=keepdims)


# --- linear algebra and movement -------------------------------------------------------------
def matmul(a, b) -> Tensor:
    return _apply("matmul", a, b)


def transpose(x: Tensor, perm: Sequence[int] | None = None) -> Tensor:
    perm = tuple(reversed(range(x.ndim))) if perm is None else \
        tuple(_axis(p, x, "transpose") for p in perm)
    return _apply("transpose", x, perm=perm)


def swapaxes(x: Tensor, a: int, b: int) -> Tensor:
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    shape = tuple(int(d) for d in shape)
    if shape.count(-1) > 1:
        _fail(f"reshape to {shape}: at most one dimension may be -1", x, "reshape")
    if -1 in shape:
        known = 1
        for d in shape:
            known *= d if d != -1 else 1
        if known == 0 or x.type.size % known:
            _fail(f"cannot reshape {x.shape} to {shape}", x, "reshape")
        shape = tuple(x.type.size // known if d == -1 else d for d in shape)
    return _apply("reshape", x, shape=shape)


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    return _apply("broadcast_to", x, shape=tuple(shape))


# --- neural-network composites ---------------------------------------------------------------
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return _apply("softmax", x, axis=_axis(axis, x, "softmax"))


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return _apply("log_softmax", x, axis=_axis(axis, x, "log_softmax"))


def softmax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean over the batch of -log softmax(logits)[label]; labels are i64 class indices."""
    return _apply("softmax_cross_entropy", logits, labels)


def mse(pred: Tensor, target) -> Tensor:
    """Mean over all elements of (pred - target)**2."""
    return _apply("mse", pred, target)


def constant(builder, value, dtype: str | None = None) -> Tensor:
    """A constant tensor in `builder` (Python scalars/lists/arrays; dtype defaults to the value's)."""
    import numpy as np

    from graphc.types import TensorType

    array = np.asarray(value)
    return builder.lift(array.astype(TensorType((), dtype).np_dtype) if dtype else array)
