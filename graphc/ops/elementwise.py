"""Elementwise ops: arithmetic, transcendental, comparison, select, cast and broadcast.

Input: nothing (imported for its side effect). Output: one registered OpDef per op, each with a
broadcasting shape rule, a NumPy reference, a bprop written with DSL ops, a scalar body that
the interpreter check and the LLVM kernel emitter share, and its ONNX name where it has one.
`NUMERIC` (the dtypes arithmetic takes) and the `_ew` shorthand serve the other families too.
"""
from __future__ import annotations

import numpy as np

from graphc.builder import Tensor
from graphc.errors import GraphcError, ShapeError
from graphc.ops import api as F
from graphc.ops.api import _apply, _builder, _fail
from graphc.ops.registry import NOT_DIFFERENTIABLE, REQUIRED, OpDef, register
from graphc.types import FLOAT_DTYPES, INT_DTYPES, TensorType, broadcast_shapes, dtype_name

# every float and integer dtype (integers wrap around, f16/bf16 compute in f32 in kernels)
NUMERIC = FLOAT_DTYPES + INT_DTYPES


def _check_dtypes(types: list[TensorType], allowed: tuple[str, ...]) -> str:
    dtypes = {t.dtype for t in types}
    if len(dtypes) > 1:
        raise ShapeError(f"operand dtypes differ: {' vs '.join(str(t) for t in types)} "
                         "(insert gc.cast)")
    (dtype,) = dtypes
    if dtype not in allowed:
        raise ShapeError(f"dtype {dtype} is not supported here; expected one of {allowed}")
    return dtype


def _broadcast(types: list[TensorType]) -> tuple[int, ...]:
    try:
        return broadcast_shapes(*(t.shape for t in types))
    except GraphcError as err:
        raise ShapeError(str(err)) from None


def elementwise_rule(allowed: tuple[str, ...], result: str | None = None):
    """Shape rule: same dtype among `allowed`, NumPy-broadcast shapes, dtype `result` or same."""
    def infer(types, attrs):
        dtype = _check_dtypes(types, allowed)
        return [TensorType(_broadcast(types), result or dtype)]
    return infer


def _ew(name, doc, reference, scalar, bprop, allowed=FLOAT_DTYPES, result=None, arity=1,
        attrs=None, infer=None, onnx=None, dsl=None):
    register(OpDef(name=name, doc=doc, kind="elementwise",
                   infer=infer or elementwise_rule(allowed, result), reference=reference,
                   bprop=bprop, scalar=scalar, arity=arity, attrs=attrs or {}, onnx=onnx,
                   dsl=dsl))


def _ignore(fn):
    def wrapped(*args, **kw):
        with np.errstate(all="ignore"):
            return fn(*args, **kw)
    return wrapped


# --- binary arithmetic ---------------------------------------------------------------------
_ew("add", "a + b", np.add, lambda e, a, b: e.add(a, b),
    lambda a, b, y, g: [g, g], NUMERIC, arity=2, onnx="Add")
_ew("sub", "a - b", np.subtract, lambda e, a, b: e.sub(a, b),
    lambda a, b, y, g: [g, -g], NUMERIC, arity=2, onnx="Sub")
_ew("mul", "a * b", np.multiply, lambda e, a, b: e.mul(a, b),
    lambda a, b, y, g: [g * b, g * a], NUMERIC, arity=2, onnx="Mul")
_ew("div", "a / b (floats)", _ignore(np.divide), lambda e, a, b: e.div(a, b),
    lambda a, b, y, g: [g / b, -(g * y) / b], arity=2, onnx="Div")
_ew("pow", "a ** b (floats)", _ignore(np.power), lambda e, a, b: e.pow(a, b),
    lambda a, b, y, g: [g * b * a ** (b - 1), g * y * F.log(a)], arity=2, onnx="Pow")
_ew("maximum", "elementwise max; NaN propagates; ties send the gradient to a",
    np.maximum, lambda e, a, b: e.max(a, b),
    lambda a, b, y, g: [F.where(a >= b, g, 0), F.where(a >= b, 0, g)], NUMERIC, arity=2,
    onnx="Max")
_ew("minimum", "elementwise min; NaN propagates; ties send the gradient to a",
    np.minimum, lambda e, a, b: e.min(a, b),
    lambda a, b, y, g: [F.where(a <= b, g, 0), F.where(a <= b, 0, g)], NUMERIC, arity=2,
    onnx="Min")

# --- unary --------------------------------------------------------------------------------
_ew("neg", "-x", np.negative, lambda e, x: e.neg(x), lambda x, y, g: [-g], NUMERIC,
    onnx="Neg")
_ew("exp", "e ** x", _ignore(np.exp), lambda e, x: e.exp(x), lambda x, y, g: [g * y],
    onnx="Exp")
_ew("log", "natural log", _ignore(np.log), lambda e, x: e.log(x), lambda x, y, g: [g / x],
    onnx="Log")
_ew("tanh", "hyperbolic tangent", np.tanh, lambda e, x: e.tanh(x),
    lambda x, y, g: [g * (1 - y * y)], onnx="Tanh")
_ew("sqrt", "square root", _ignore(np.sqrt), lambda e, x: e.sqrt(x),
    lambda x, y, g: [g / (2 * y)], onnx="Sqrt")
_ew("relu", "max(x, 0); NaN propagates; the gradient at 0 is 0",
    lambda x: np.maximum(x, np.zeros((), x.dtype)),
    lambda e, x: e.max(x, e.const(0, x)), lambda x, y, g: [F.where(y > 0, g, 0)], NUMERIC,
    onnx="Relu")


def _sigmoid(e, x):
    one = e.const(1, x)
    return e.div(one, e.add(one, e.exp(e.neg(x))))


_ew("sigmoid", "1 / (1 + exp(-x))", _ignore(lambda x: np.asarray(1 / (1 + np.exp(-x)), x.dtype)),
    _sigmoid, lambda x, y, g: [g * y * (1 - y)], onnx="Sigmoid")
_ew("stop_gradient", "identity whose gradient is zero", lambda x: np.array(x, copy=True),
    lambda e, x: x, lambda x, y, g: [None], NUMERIC + ("bool",), onnx="Identity")

# --- comparisons --------------------------------------------------------------------------
def _comparison(method: str):
    """The scalar body calling the emitter's comparison `method`."""
    return lambda e, a, b: getattr(e, method)(a, b)


for _name, _np, _method, _onnx in [
        ("equal", np.equal, "eq", "Equal"), ("not_equal", np.not_equal, "ne", None),
        ("less", np.less, "lt", "Less"), ("less_equal", np.less_equal, "le", "LessOrEqual"),
        ("greater", np.greater, "gt", "Greater"),
        ("greater_equal", np.greater_equal, "ge", "GreaterOrEqual")]:
    _ew(_name, f"elementwise {_method} comparison, giving bool", _np,
        _comparison(_method), NOT_DIFFERENTIABLE,
        NUMERIC + ("bool",), result="bool", arity=2, onnx=_onnx)


# --- select, cast, broadcast ----------------------------------------------------------------
def _where_rule(types, attrs):
    cond, a, b = types
    if cond.dtype != "bool":
        raise ShapeError(f"where: condition must be bool, got {cond}")
    dtype = _check_dtypes([a, b], NUMERIC + ("bool",))
    return [TensorType(_broadcast(types), dtype)]


def where(cond, a, b) -> Tensor:
    """Elementwise select with broadcasting; scalars take the dtype of the other branch."""
    bld = _builder(cond, a, b)
    like = a if isinstance(a, Tensor) else b
    return bld.apply("where", [bld.lift(cond), bld.lift(a, like=like), bld.lift(b, like=like)])


_ew("where", "cond ? a : b with broadcasting", np.where, lambda e, c, a, b: e.select(c, a, b),
    lambda c, a, b, y, g: [None, F.where(c, g, 0), F.where(c, 0, g)], arity=3, infer=_where_rule,
    onnx="Where", dsl=where)


def _cast_rule(types, attrs):
    return [types[0].with_dtype(attrs["to"])]


def cast(x: Tensor, dtype: str) -> Tensor:
    try:
        to = dtype_name(dtype)
    except GraphcError as err:
        _fail(str(err), x, "cast")
    return _apply("cast", x, to=to)


_ew("cast", "convert the element type (C semantics: float to int truncates)",
    lambda x, to: _ignore(lambda: x.astype(TensorType((), to).np_dtype))(),
    lambda e, x, to: e.cast(x, to),
    lambda x, y, g, to: [F.cast(g, x.dtype) if x.type.is_float else None],
    attrs={"to": REQUIRED}, infer=_cast_rule, dsl=cast)


def _broadcast_to_rule(types, attrs):
    (x,), shape = types, tuple(attrs["shape"])
    if len(x.shape) > len(shape) or _broadcast([x, TensorType(shape, x.dtype)]) != shape:
        raise ShapeError(f"broadcast_to: {x.shape} cannot broadcast to {shape}")
    return [TensorType(shape, x.dtype)]


_ew("broadcast_to", "NumPy broadcast_to (materialised)",
    lambda x, shape: np.array(np.broadcast_to(x, shape)), lambda e, x, shape: x,
    lambda x, y, g, shape: [g], NUMERIC + ("bool",), attrs={"shape": REQUIRED},
    infer=_broadcast_to_rule)
