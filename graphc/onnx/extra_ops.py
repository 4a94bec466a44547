"""ONNX scans, crops, selections, gates and small determinants as graphc graph builders.

Input: a node's operands (Tensors for data; NumPy arrays for the operands in table.py's
`STATIC`: CumProd's axis, CenterCropPad's shape, Compress's condition) and its attributes
under their ONNX names. Output: a Tensor.

Everything is composed from graphc ops, so gradients, kernels and export come from theirs:
- CumProd is index_ops' log-step scan with products (ceil(log2 n) shifted products; no division,
  so zeros in x are exact and differentiable).
- CenterCropPad is a slice then a zero pad per axis (crop and pad starts rounded down).
- EyeLike is a constant (its values do not depend on the input's).
- ReverseSequence reverses the first sequence_lens[b] steps of every batch entry by one gather
  over (batch, time) flattened; the lengths are read at run time and checked against the time
  axis.
- SwiGLU is A * sigmoid(alpha * A) * B.
- Det expands along the first row with memoised minors (exact formula, no pivoting to go
  wrong) for n <= 4 and refuses larger matrices.
- Compress keeps the positions where the import-time condition is true, as one gather with
  constant indices (a condition computed by the graph would make the shape data-dependent).
"""
from __future__ import annotations

import functools

import numpy as np

from graphc.builder import Tensor
from graphc.errors import GraphcError
from graphc.onnx.dtypes import onnx_dtype
from graphc.onnx.index_ops import checked_index, iota, log_scan
from graphc.onnx.ops import const, ints
from graphc.ops import api as F
from graphc.types import TensorType


def _axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < rank:
        raise GraphcError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis % rank


# --- scans -------------------------------------------------------------------------------------
def CumProd(x, axis, exclusive=0, reverse=0):
    return log_scan(x, axis, F.mul, 1.0, exclusive, reverse, "CumProd")


# --- crops and constants -----------------------------------------------------------------------
def CenterCropPad(input_data, shape, axes=None):
    """Each listed axis cut to shape[k] around its centre (start (n - s) // 2) or zero-padded
    to it ((s - n) // 2 before, the rest after)."""
    rank = input_data.ndim
    listed = [_axis(a, rank, "CenterCropPad") for a in (range(rank) if axes is None else axes)]
    sizes = ints(shape)
    if len(sizes) != len(listed) or len(set(listed)) != len(listed) or min(sizes, default=0) < 0:
        raise GraphcError(f"CenterCropPad: shape {sizes} must give one size >= 0 for each of "
                          f"the distinct axes {listed}")
    y = input_data
    for a, s in zip(listed, sizes):
        n = y.shape[a]
        if s < n:
            start = (n - s) // 2
            y = F.slice(y, [start], [start + s], [a])
        elif s > n:
            pads = [0] * (2 * rank)
            pads[a], pads[rank + a] = (s - n) // 2, s - n - (s - n) // 2
            y = F.pad(y, pads)
    return y


def EyeLike(input, dtype=None, k=0):
    """Ones on the k-th diagonal of a matrix shaped like `input`, in `dtype` (default the
    input's)."""
    if input.ndim != 2:
        raise GraphcError(f"EyeLike: input must be 2-D, got {list(input.shape)}")
    out = input.dtype if dtype is None else onnx_dtype(int(dtype), "EyeLike: dtype")
    rows, cols = input.shape
    eye = np.eye(rows, cols, int(k), dtype=TensorType((), out).np_dtype)
    return const(input.builder, eye)


# --- sequences ---------------------------------------------------------------------------------
def ReverseSequence(input, sequence_lens, batch_axis=1, time_axis=0):
    """y[b, t] = x[b, lens[b] - 1 - t] for t < lens[b], x[b, t] beyond."""
    if input.ndim < 2:
        raise GraphcError(f"ReverseSequence: input must have rank >= 2, got "
                          f"{list(input.shape)}")
    b_axis = _axis(batch_axis, input.ndim, "ReverseSequence")
    t_axis = _axis(time_axis, input.ndim, "ReverseSequence")
    if {b_axis, t_axis} != {0, 1}:
        raise GraphcError(f"ReverseSequence: batch_axis and time_axis must be 0 and 1 in "
                          f"some order, got {batch_axis} and {time_axis}")
    lens = sequence_lens if isinstance(sequence_lens, Tensor) else \
        const(input.builder, sequence_lens)
    batch, steps = input.shape[b_axis], input.shape[t_axis]
    if lens.dtype != "i64" or lens.shape != (batch,):
        raise GraphcError(f"ReverseSequence: sequence_lens must be integers [{batch}] (one "
                          f"length per batch entry), got {lens.type}")
    x = F.transpose(input, [1, 0] + list(range(2, input.ndim))) if b_axis else input
    t = iota(x, (1, steps), 1)
    length = F.reshape(lens, (batch, 1))
    source = checked_index(F.where(t < length, length - 1 - t, t), steps)
    rows = source + iota(x, (batch, 1), 0) * steps
    flat = F.reshape(x, (batch * steps,) + x.shape[2:])
    y = F.gather(flat, rows, 0)
    return F.transpose(y, [1, 0] + list(range(2, input.ndim))) if b_axis else y


# --- gates -------------------------------------------------------------------------------------
def SwiGLU(A, B, alpha=1.0):
    if A.type != B.type or not A.type.is_float:
        raise GraphcError(f"SwiGLU: A and B must be float tensors of one shape and dtype (no "
                          f"broadcasting), got {A.type} and {B.type}")
    return A * F.sigmoid(A * float(alpha)) * B


# --- determinants ------------------------------------------------------------------------------
MAX_DET_SIZE = 4


def Det(X):
    """det of [..., n, n] by cofactor expansion along the first row, each minor built once
    (n <= 4: at most 4 + 6 + 4 = 14 minors of the lower rows)."""
    if X.ndim < 2 or X.shape[-1] != X.shape[-2] or not X.type.is_float:
        raise GraphcError(f"Det: X must be a float tensor [..., n, n], got {X.type}")
    n, lead = X.shape[-1], X.shape[:-2]
    if not 1 <= n <= MAX_DET_SIZE:
        raise GraphcError(f"Det: graphc computes determinants of 1x1 to {MAX_DET_SIZE}x"
                          f"{MAX_DET_SIZE} matrices (by cofactor expansion), got {n}x{n}")
    entry = [[F.reshape(F.slice(X, [i, j], [i + 1, j + 1], [-2, -1]), lead) for j in range(n)]
             for i in range(n)]

    @functools.cache
    def minor(columns: tuple[int, ...]) -> Tensor:
        """det of the rows n - len(columns) .. n - 1 restricted to `columns`."""
        row = n - len(columns)
        if len(columns) == 1:
            return entry[row][columns[0]]
        total = None
        for k, j in enumerate(columns):
            term = entry[row][j] * minor(columns[:k] + columns[k + 1:])
            total = term if total is None else (total - term if k % 2 else total + term)
        return total

    return minor(tuple(range(n)))


# --- selections --------------------------------------------------------------------------------
def Compress(input, condition, axis=None):
    """The slices along `axis` (of the flattened input without one) where the import-time
    condition is true; the condition may be shorter than the axis."""
    keep = np.asarray(condition).reshape(-1)
    if keep.dtype != np.bool_:
        raise GraphcError(f"Compress: condition must be bool, got {keep.dtype}")
    x = F.reshape(input, (input.type.size,)) if axis is None else input
    a = 0 if axis is None else _axis(axis, input.ndim, "Compress")
    if keep.size > x.shape[a] and keep[x.shape[a]:].any():
        raise GraphcError(f"Compress: condition has {keep.size} entries, true beyond the "
                          f"{x.shape[a]} positions of axis {a}")
    index = np.flatnonzero(keep[:x.shape[a]])
    if index.size == 0:
        shape = x.shape[:a] + (0,) + x.shape[a + 1:]
        return const(x.builder, np.zeros(shape, x.type.np_dtype))
    return F.gather(x, const(x.builder, index.astype(np.int64)), a)

