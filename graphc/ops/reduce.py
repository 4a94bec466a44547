"""Reductions over axes: sum, mean, max (with keepdims).

Input: nothing (imported for its side effect). Output: registered reduction OpDefs whose
`reducer` (combine op, identity) and `finalize` drive the generic reduction kernel, and their
op-API functions (`sum(x, axis=None, keepdims=False)`, ...), which turn `axis` into `axes`.
"""
from __future__ import annotations

import builtins
import math
import warnings

import numpy as np

from graphc.builder import Tensor
from graphc.errors import ShapeError
from graphc.ops import api as F
from graphc.ops.api import _apply, _axes
from graphc.ops.elementwise import NUMERIC
from graphc.ops.registry import REQUIRED, OpDef, register
from graphc.types import FLOAT_DTYPES, TensorType, dtype_name


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool):
    return tuple(1 if i in axes else d for i, d in enumerate(shape) if keepdims or i not in axes)


def lowest(dtype: np.dtype):
    """The identity of max (what max over an empty axis gives, as in ONNX)."""
    if dtype_name(dtype) in FLOAT_DTYPES:  # bf16's NumPy kind is "V"
        return -np.inf
    return False if dtype.kind == "b" else np.iinfo(dtype).min


def highest(dtype: np.dtype):
    """The identity of min."""
    if dtype_name(dtype) in FLOAT_DTYPES:
        return np.inf
    return True if dtype.kind == "b" else np.iinfo(dtype).max


def _rule(allowed):
    """Shape rule of a reduction over sorted, unique axes."""
    def infer(types, attrs):
        (x,), axes = types, attrs["axes"]
        if x.dtype not in allowed:
            raise ShapeError(f"dtype {x.dtype} not supported; expected one of {allowed}")
        if any(not 0 <= a < builtins.max(x.rank, 1) for a in axes) or list(axes) != sorted(set(axes)):
            raise ShapeError(f"axes {axes} must be sorted, unique and within rank {x.rank}")
        if x.rank == 0 and axes:
            raise ShapeError("cannot reduce over an axis of a scalar")
        return [TensorType(reduced_shape(x.shape, axes, attrs["keepdims"]), x.dtype)]
    return infer


def keep_dims(g, x, axes: tuple[int, ...]):
    """`g` reshaped so that the reduced axes of `x` are present with size 1."""
    return F.reshape(g, reduced_shape(x.shape, axes, True))


def _count(x, axes) -> int:
    return math.prod(x.shape[a] for a in axes)


def _quiet_mean(x, axes, keepdims):
    """np.mean without its warning for an empty axis (the result is NaN, as compiled)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.mean(x, axis=axes, keepdims=keepdims, dtype=x.dtype)


def _sum_bprop(x, y, g, axes, keepdims):
    return [F.broadcast_to(keep_dims(g, x, axes), x.shape)]


def _mean_bprop(x, y, g, axes, keepdims):
    return [F.broadcast_to(keep_dims(g, x, axes) / _count(x, axes), x.shape)]


def _max_bprop(x, y, g, axes, keepdims):
    """The gradient is split equally among the elements that attain the max."""
    mask = F.cast(F.equal(x, keep_dims(y, x, axes)), x.dtype)
    return [mask * keep_dims(g, x, axes) / F.sum(mask, axes, keepdims=True)]


_ATTRS = {"axes": REQUIRED, "keepdims": False}


def sum(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return _apply("sum", x, axes=_axes(axis, x, "sum"), keepdims=bool(keepdims))


register(OpDef(
    name="sum", doc="sum over axes", kind="reduction", infer=_rule(NUMERIC),
    reference=lambda x, axes, keepdims: np.sum(x, axis=axes, keepdims=keepdims, dtype=x.dtype),
    bprop=_sum_bprop, attrs=_ATTRS, reducer=("add", 0.0), dsl=sum))


def mean(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return _apply("mean", x, axes=_axes(axis, x, "mean"), keepdims=bool(keepdims))


register(OpDef(
    name="mean", doc="arithmetic mean over axes", kind="reduction", infer=_rule(FLOAT_DTYPES),
    reference=lambda x, axes, keepdims: _quiet_mean(x, axes, keepdims),
    bprop=_mean_bprop, attrs=_ATTRS, reducer=("add", 0.0),
    finalize=lambda e, acc, count: e.div(acc, e.const(count, acc)), dsl=mean))


def max(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return _apply("max", x, axes=_axes(axis, x, "max"), keepdims=bool(keepdims))


register(OpDef(
    name="max", doc="maximum over axes (NaN propagates)", kind="reduction",
    infer=_rule(NUMERIC),
    reference=lambda x, axes, keepdims: np.max(x, axis=axes, keepdims=keepdims,
                                               initial=lowest(x.dtype)),
    bprop=_max_bprop, attrs=_ATTRS, reducer=("max", -math.inf), dsl=max))
