"""ONNX ops whose semantics differ from every graphc op: one function per ONNX op, named like it.

Input: a node's operands (graphc Tensors for data, NumPy arrays for the operands listed in
`STATIC`, which shapes depend on) and its attributes under their ONNX names, in the form of the
newest opset (table.py's `normalize` moves older forms there, the one place opset differences
live). Output: a Tensor, a NumPy array (folded) or a tuple of them, one per ONNX output.

An ONNX op that maps one-to-one onto a graphc op has no function here: its op's record names it
(`OpDef.onnx`) and graphc/onnx/table.py imports it through the op's function. The functions here
are the rest: variadic forms (Max, Sum), integer semantics (Div, Mod), operands that are
attributes in graphc (Reshape, Slice), compositions (Softsign, Gemm) and folded shape ops. The
NN ops (Conv, pools, normalizations, losses) are in nn_ops.py.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from graphc.builder import GraphBuilder, Tensor
from graphc.errors import GraphcError
from graphc.onnx.dtypes import onnx_dtype
from graphc.ops import api as F
from graphc.ops import api_nn as N
from graphc.types import INT_DTYPES, broadcast_shapes


# --- helpers ---------------------------------------------------------------------------------
def const(b: GraphBuilder, array: Any) -> Tensor:
    """A constant node holding `array` in its own dtype."""
    return b.lift(np.asarray(array))


def scalar_like(x: Tensor, value: float) -> Tensor:
    return F.constant(x.builder, value, x.dtype)


def ints(array: Any) -> list[int]:
    return [int(v) for v in np.asarray(array).reshape(-1)]


def iota(like: Tensor, axis: int) -> Tensor:
    return like.builder.apply("iota", [], shape=like.shape, axis=axis, dtype="i64")


def as_float(x: Tensor) -> Tensor:
    return x if x.type.is_float else F.cast(x, "f64")


def back_to(y: Tensor, like: Tensor) -> Tensor:
    """Undo `as_float`: the result in `like`'s dtype (bool: nonzero)."""
    if y.dtype == like.dtype:
        return y
    if like.dtype == "bool":
        return F.not_equal(y, 0.0)
    return F.cast(F.where(y < 0, -F.cast(-y, "i64"), F.cast(y, "i64")), like.dtype) \
        if like.dtype in INT_DTYPES else F.cast(y, like.dtype)


def select(x: Tensor, axis: int, index: list[int], fill: float = 0.0) -> Tensor:
    """y[..., j, ...] = x[..., index[j], ...] along `axis` (index -1: `fill`), as a matmul with a
    0/1 matrix, so any static gather, slice, pad, tile or concat has a matmul gradient."""
    axis %= x.ndim
    n, m = x.shape[axis], len(index)
    if x.type.size == 0 or m == 0:
        shape = x.shape[:axis] + (m,) + x.shape[axis + 1:]
        return const(x.builder, np.full(shape, fill, x.type.np_dtype))
    xf = as_float(x)
    place = np.zeros((n, m), xf.type.np_dtype)
    for j, i in enumerate(index):
        if i >= 0:
            place[i, j] = 1
    perm = [a for a in range(x.ndim) if a != axis] + [axis]
    moved = F.transpose(xf, perm) if perm != list(range(x.ndim)) else xf
    flat = F.reshape(moved, (-1, n))
    y = flat @ F.constant(x.builder, place)
    if fill and any(i < 0 for i in index):
        y = y + F.constant(x.builder, fill * (1 - place.sum(0)), xf.dtype)
    y = F.reshape(y, tuple(moved.shape[:-1]) + (m,))
    inverse = [int(p) for p in np.argsort(perm)]
    y = F.transpose(y, inverse) if inverse != list(range(x.ndim)) else y
    return back_to(y, x)


def _variadic(fn, xs):
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


# --- elementwise arithmetic and logic ----------------------------------------------------------
def Identity(x): return x
def Max(*data): return _variadic(F.maximum, data)
def Min(*data): return _variadic(F.minimum, data)
def Sum(*data): return _variadic(F.add, data)
def Mean(*data): return Sum(*data) / float(len(data))


def Div(a, b):
    if a.type.is_float:
        return a / b
    return back_to(as_float(a) / as_float(b), a)  # integer division truncates toward zero


def Pow(x, y):
    if x.type.is_float:
        return x ** (y if y.dtype == x.dtype else F.cast(y, x.dtype))
    return back_to(F.cast(x, "f64") ** F.cast(y, "f64"), x)


def Clip(input, min=None, max=None):
    if input.dtype in INT_DTYPES:  # a missing integer bound is the end of the type's range
        info = np.iinfo(input.type.np_dtype)
        min, max = info.min if min is None else min, info.max if max is None else max
    return F.clip(input, min, max)


# --- activations -------------------------------------------------------------------------------
def ThresholdedRelu(x, alpha=1.0): return F.where(x > alpha, x, 0.0)
def Softsign(x): return x / (1 + F.abs(x))
def Mish(x): return x * F.tanh(F.softplus(x))
def Swish(x, alpha=1.0): return x * F.sigmoid(alpha * x)


def Celu(x, alpha=1.0):
    return F.maximum(x, 0.0) + F.minimum(alpha * (F.exp(F.minimum(x, 0.0) / alpha) - 1), 0.0)


# --- casts, constants and shapes (folded) ------------------------------------------------------
def Cast(input, to, saturate=1, round_mode="up"):
    dtype = onnx_dtype(to, "Cast")
    return input if dtype == input.dtype else F.cast(input, dtype)


def CastLike(input, target_type, saturate=1, round_mode="up"):
    dtype = target_type.dtype
    return input if dtype == input.dtype else F.cast(input, dtype)


def Constant(value=None, value_float=None, value_floats=None, value_int=None, value_ints=None,
             value_string=None, value_strings=None, sparse_value=None):
    for v, dtype in ((value, None), (value_float, np.float32), (value_floats, np.float32),
                     (value_int, np.int64), (value_ints, np.int64)):
        if v is not None:
            return np.asarray(v, dtype)
    raise GraphcError("Constant: only tensor, float and int values are supported")


def ConstantOfShape(input, value=None):
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value)
    return np.full(ints(input), fill.reshape(-1)[0], fill.dtype)


def Shape(data, start=0, end=None):
    return np.array(data.shape[start:end], np.int64)


def Size(data):
    return np.array(math.prod(data.shape), np.int64)


# --- movement ----------------------------------------------------------------------------------
def Reshape(data, shape, allowzero=0):
    dims = ints(shape)
    if not allowzero:
        dims = [data.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return F.reshape(data, dims)


def Flatten(input, axis=1):
    axis %= max(input.ndim, 1) if axis < 0 else input.ndim + 1
    return F.reshape(input, (math.prod(input.shape[:axis]), math.prod(input.shape[axis:])))


def Squeeze(data, axes=None):
    drop = {a % data.ndim for a in ints(axes)} if axes is not None else \
        {i for i, d in enumerate(data.shape) if d == 1}
    if any(data.shape[a] != 1 for a in drop):
        raise GraphcError(f"Squeeze: axes {sorted(drop)} of {list(data.shape)} are not all 1")
    return F.reshape(data, [d for i, d in enumerate(data.shape) if i not in drop])


def Unsqueeze(data, axes):
    rank = data.ndim + len(ints(axes))
    new = sorted(a % rank for a in ints(axes))
    dims = iter(data.shape)
    return F.reshape(data, [1 if i in new else next(dims) for i in range(rank)])


def Expand(input, shape):
    out = broadcast_shapes(tuple(input.shape), tuple(ints(shape)))
    return input if out == input.shape else F.broadcast_to(input, out)


def Slice(data, starts, ends, axes=None, steps=None):
    return F.slice(data, ints(starts), ints(ends), None if axes is None else ints(axes),
                   None if steps is None else ints(steps))


def GatherElements(data, indices, axis=0):
    """out[..., i, ...] = data[..., indices[..., i, ...], ...] along `axis`: a one-hot product
    summed over a new axis (data is first cut to the indices' extent on the other axes)."""
    axis %= data.ndim
    n = data.shape[axis]
    if isinstance(indices, np.ndarray):
        indices = const(data.builder, indices)
    cut = [a for a in range(data.ndim) if a != axis and indices.shape[a] != data.shape[a]]
    if cut:
        data = F.slice(data, [0] * len(cut), [indices.shape[a] for a in cut], cut)
    idx = F.where(indices < 0, indices + n, indices)
    idx = F.reshape(idx, idx.shape[:axis + 1] + (1,) + idx.shape[axis + 1:])
    rows = F.reshape(as_float(data), data.shape[:axis] + (1, n) + data.shape[axis + 1:])
    classes = data.builder.apply("iota", [], shape=(1,) * (axis + 1) + (n,) +
                                 (1,) * (data.ndim - axis - 1), axis=axis + 1, dtype="i64")
    onehot = F.cast(F.equal(idx, classes), rows.dtype)
    return back_to(F.sum(onehot * rows, axis + 1), data)


def Concat(*inputs, axis):
    return F.concat(inputs, axis)


def Split(input, split=None, axis=0, num_outputs=None):
    n = input.shape[axis % input.ndim]
    if split is None:  # opset 18: num_outputs parts, the last one smaller
        size = -(-n // num_outputs)
        sizes = [max(0, min(size, n - i * size)) for i in range(num_outputs)]
    else:
        sizes = ints(split)
    bounds = np.cumsum([0, *sizes]).tolist()
    return tuple(select(input, axis, list(range(lo, hi))) if lo == hi else
                 F.slice(input, [lo], [hi], [axis]) for lo, hi in itertools.pairwise(bounds))


def Pad(data, pads, constant_value=None, axes=None, mode="constant"):
    axes = [a % data.ndim for a in ints(axes)] if axes is not None else list(range(data.ndim))
    p = ints(pads)
    before, after = [0] * data.ndim, [0] * data.ndim
    for k, a in enumerate(axes):
        before[a], after[a] = p[k], p[k + len(axes)]
    fill = float(np.asarray(constant_value).reshape(-1)[0]) if constant_value is not None else 0.0
    if mode != "wrap":
        return F.pad(data, before + after, mode=mode, value=fill)
    y = data  # wrap: a static gather per axis
    for a in range(data.ndim):
        if before[a] or after[a]:
            y = select(y, a, [j % data.shape[a] for j in range(-before[a],
                                                                data.shape[a] + after[a])])
    return y


def Tile(input, repeats):
    y = input
    for a, r in enumerate(ints(repeats)):
        if r != 1:
            y = F.concat([y] * r, a) if r > 0 else select(y, a, [])
    return y


def Dropout(data, ratio=None, training_mode=None, seed=None):
    """Inference (or ratio 0) is the identity with an all-true mask; training draws a fresh
    mask every step from graphc's counter-based generator."""
    rate = 0.5 if ratio is None else float(np.asarray(ratio))
    training = training_mode is not None and bool(np.asarray(training_mode))
    return N.dropout(data, rate, training=training, seed=seed, return_mask=True)


# --- matrix products ---------------------------------------------------------------------------
def MatMul(a, b):
    squeeze = []
    if a.ndim == 1:
        a, squeeze = F.reshape(a, (1, a.shape[0])), squeeze + [-2]
    if b.ndim == 1:
        b, squeeze = F.reshape(b, (b.shape[0], 1)), squeeze + [-1]
    y = a @ b
    if squeeze:
        drop = {a % y.ndim for a in squeeze}
        y = F.reshape(y, [d for i, d in enumerate(y.shape) if i not in drop])
    return y


def Gemm(A, B, C=None, alpha=1.0, beta=1.0, transA=0, transB=0):
    y = (A.T if transA else A) @ (B.T if transB else B)
    if alpha != 1.0:
        y = alpha * y
    if C is not None:
        y = y + (C if beta == 1.0 else beta * C)
    return y
