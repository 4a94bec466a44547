"""Scatters into rows: the primitive under ONNX ScatterND and ScatterElements.

Input: nothing (imported for its side effect). Output: the registered OpDef
  scatter_rows(data [N, R], index [M] i64, updates [M, R]; reduction="none"|"add") -> [N, R]
      row index[m] of data becomes updates[m] (none; rows several indices name get the mean of
      their updates, where ONNX leaves duplicates undefined) or has updates[m] added (add);
      negative indices wrap.
It is a composite: it decomposes into a one-hot matmul, which the kernel emitter lowers as a
scatter-add (O(M·R), runtime/kernels/scatter.py), and its bprop reads the output gradient with a
gather (O(M·R)) instead of the dense one-hot product autodiff would derive from the
decomposition (O(M·N·R)). The ONNX functions in graphc/onnx/index_ops.py flatten their operands
into this form.
"""
from __future__ import annotations

import numpy as np

from graphc.builder import Tensor
from graphc.errors import GraphcError, ShapeError
from graphc.ops import api as F
from graphc.ops.losses import one_hot
from graphc.ops.registry import OpDef, register
from graphc.types import FLOAT_DTYPES, TensorType

SCATTER_REDUCTIONS = ("none", "add")


def _scatter_rule(types, attrs):
    data, index, updates = types
    if index.dtype != "i64" or index.rank != 1:
        raise ShapeError(f"scatter_rows: index must be i64 [M], got {index}")
    if data.rank != 2 or data.dtype not in FLOAT_DTYPES or \
            updates != TensorType((index.shape[0], data.shape[1]), data.dtype):
        raise ShapeError(f"scatter_rows: need float data [N, R] and updates [M, R] of its "
                         f"dtype for an index [M], got {data}, {updates} and {index}")
    if attrs["reduction"] not in SCATTER_REDUCTIONS:
        raise ShapeError(f"scatter_rows: reduction {attrs['reduction']!r} is not one of "
                         f"{SCATTER_REDUCTIONS}")
    return [data]


def _check_index(types, arrays, **attrs):
    """Indices in [-N, N): a compiled run checks them again where they are read (a gather)."""
    if arrays[1] is None:
        return
    size, index = types[0].shape[0], arrays[1]
    bad = (index < -size) | (index >= size)
    if np.any(bad):
        at = int(np.argmax(bad))
        raise GraphcError(f"scatter_rows: index {int(index[at])} at [{at}] is outside "
                          f"[-{size}, {size})")


def _scatter_reference(data, index, updates, reduction):
    n = data.shape[0]
    rows = np.where(index < 0, index + n, index)
    sums = np.zeros_like(data)
    np.add.at(sums, rows, updates)
    if reduction == "add":
        return data + sums
    count = np.bincount(rows, minlength=n)[:, None].astype(data.dtype)
    return np.where(count > 0, sums / np.maximum(count, 1), data)


def _scatter_add(data: Tensor, index: Tensor, updates: Tensor) -> Tensor:
    return F.scatter_rows(data, index, updates, reduction="add")


def _hits(data: Tensor, index: Tensor) -> Tensor:
    """[N, 1]: how many indices name each row of data."""
    b, (n, _), m = data.builder, data.shape, index.shape[0]
    return _scatter_add(F.constant(b, np.zeros((n, 1)), data.dtype), index,
                       F.constant(b, np.ones((m, 1)), data.dtype))


def _scatter_bprop(data, index, updates, y, g, reduction):
    if reduction == "add":
        return [g, None, F.gather(g, index, 0)]
    count = _hits(data, index)
    return [F.where(count > 0, 0.0, g), None, F.gather(g / F.maximum(count, 1.0), index, 0)]


def _scatter_decompose(data, index, updates, reduction):
    """data + Hᵀ·updates with H = one_hot(index) [M, N]: a scatter-add kernel (none: the count
    of each row's updates comes from the same product, a column of ones beside the updates, so
    H has one reader and stays inside the kernel). The index is first read through a gather of
    0..N-1, which wraps negatives and fails on the rest."""
    b, (n, r), m = data.builder, data.shape, index.shape[0]
    rows = F.gather(F.constant(b, np.arange(n, dtype=np.int64)), index)
    spread = F.transpose(one_hot(rows, n, data.dtype))  # [N, M]
    if reduction == "add":
        return data + spread @ updates
    both = spread @ F.concat([updates, F.constant(b, np.ones((m, 1)), data.dtype)], 1)
    sums, count = F.slice(both, [0], [r], [1]), F.slice(both, [r], [r + 1], [1])
    return F.where(count > 0, sums / F.maximum(count, 1.0), data)


register(OpDef(
    name="scatter_rows", doc="rows index[m] of data set to (none: the mean of) or incremented "
    "by (add) updates[m]; negative indices wrap", kind="composite", infer=_scatter_rule,
    reference=_scatter_reference, bprop=_scatter_bprop, attrs={"reduction": "none"}, arity=3,
    decompose=_scatter_decompose, check_inputs=_check_index))
