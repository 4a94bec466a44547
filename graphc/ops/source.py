"""Source ops with no inputs: constant and iota. They are evaluated once at compile time.

Input: nothing (imported for its side effect). Output: registered OpDefs of kind "source", and
the op-API function `constant(builder, value, dtype=None)`; iota is internal (not in the API).
"""
from __future__ import annotations

import numpy as np

from graphc.errors import ShapeError
from graphc.ops.registry import NOT_DIFFERENTIABLE, REQUIRED, OpDef, register
from graphc.types import TensorType


def _constant_rule(types, attrs):
    t = TensorType(tuple(attrs["shape"]), attrs["dtype"])
    if len(attrs["value"]) != t.size:
        raise ShapeError(f"constant: {len(attrs['value'])} values for shape {t.shape}")
    return [t]


def _constant(value, shape, dtype):
    return np.array(value, dtype=TensorType((), dtype).np_dtype).reshape(shape)


def constant(builder, value, dtype: str | None = None):
    """A constant tensor in `builder` (Python scalars/lists/arrays; dtype defaults to the value's)."""
    array = np.asarray(value)
    return builder.lift(array.astype(TensorType((), dtype).np_dtype) if dtype else array)


register(OpDef(
    name="constant", doc="a tensor literal (flat row-major values)", kind="source",
    infer=_constant_rule, reference=_constant, bprop=NOT_DIFFERENTIABLE, arity=0,
    attrs={"value": REQUIRED, "shape": (), "dtype": "f32"}, dsl=constant))


def _iota_rule(types, attrs):
    t = TensorType(tuple(attrs["shape"]), attrs["dtype"])
    if not 0 <= attrs["axis"] < t.rank:
        raise ShapeError(f"iota: axis {attrs['axis']} out of range for shape {t.shape}")
    return [t]


def _iota(shape, axis, dtype):
    index = np.arange(shape[axis]).reshape([-1 if i == axis else 1 for i in range(len(shape))])
    return np.broadcast_to(index, shape).astype(TensorType((), dtype).np_dtype)


register(OpDef(
    name="iota", doc="the index along `axis`, broadcast to `shape`", kind="source",
    infer=_iota_rule, reference=_iota, bprop=NOT_DIFFERENTIABLE, arity=0,
    attrs={"shape": REQUIRED, "axis": 0, "dtype": "i64"}, public=False))
