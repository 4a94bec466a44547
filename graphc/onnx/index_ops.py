"""ONNX indexing, scatter, range and ranking ops as graphc graph builders (one function per op).

Input: a node's operands (Tensors for data; NumPy arrays for the operands in table.py's
`STATIC`: Range's start/limit/delta, Trilu's k, CumSum's axis, OneHot's depth, TopK's K) and its
attributes under their ONNX names. Output: a Tensor (Range: a folded NumPy array) or a tuple.

Everything is composed from graphc ops, so gradients, kernels and export come from theirs:
- GatherND is one gather from the data flattened over the indexed axes (its gradient is a
  scatter-add); every index component is first read through a gather of 0..n-1, which wraps
  negatives and raises a GraphcError (a run-time error in compiled code) for the rest.
- ScatterND and ScatterElements flatten into graphc's `scatter_rows` (reductions none and add:
  a scatter-add kernel, O(updates); with none, a target several indices name gets the mean of
  their updates, where ONNX leaves duplicates undefined); mul, max and min compare every update
  with every target row, O(updates · rows), which suits the small scatters exports contain.
  Integer data goes through float64 for none and add (exact below 2**53).
- CumSum is a log-step scan (`log_scan`, shared with extra_ops' CumProd): ceil(log2 n) shifted
  adds, O(n log n), exact for integers.
- TopK picks the k best one at a time (O(k·n), k steps) when k is small against n, and otherwise
  ranks every element against every other (O(n²)); ties go to the lower index, NaN ranks as +inf.
Einsum is in einsum_ops.py.
"""
from __future__ import annotations

import math

import numpy as np

from graphc.builder import Tensor
from graphc.errors import GraphcError
from graphc.onnx.ops import as_float, back_to, const
from graphc.ops import api as F
from graphc.ops.reduce import highest, lowest
from graphc.types import INT_DTYPES


# --- helpers -----------------------------------------------------------------------------------
def iota(x: Tensor, shape: tuple[int, ...], axis: int) -> Tensor:
    """i64 0..shape[axis]-1 along `axis`, broadcast to `shape`, in x's graph."""
    return x.builder.apply("iota", [], shape=tuple(shape), axis=axis, dtype="i64")


def checked_index(index: Tensor, size: int) -> Tensor:
    """`index` with negatives wrapped, read through a gather of 0..size-1: an index outside
    [-size, size) is a GraphcError (interpreted) or a run-time error (compiled)."""
    return F.gather(F.constant(index.builder, np.arange(size, dtype=np.int64)), index)


def linear_index(indices: Tensor, dims: tuple[int, ...]) -> Tensor:
    """indices [..., k] (k = len(dims)) -> the row-major position in `dims` [...], i64."""
    lead = indices.shape[:-1]
    strides = [math.prod(dims[j + 1:]) for j in range(len(dims))]
    total = None
    for j, (size, stride) in enumerate(zip(dims, strides)):
        part = F.reshape(F.slice(indices, [j], [j + 1], [-1]), lead)
        part = checked_index(part, size)
        part = part * stride if stride != 1 else part
        total = part if total is None else total + part
    return total


def _int(value, what: str, op: str) -> int:
    array = np.asarray(value).reshape(-1)
    if array.size != 1:
        raise GraphcError(f"{op}: {what} must be a single number, got {array.tolist()}")
    if array.dtype.kind == "f" and not float(array[0]).is_integer():
        raise GraphcError(f"{op}: {what} must be an integer, got {array[0]}")
    return int(array[0])


def _axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < rank:
        raise GraphcError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def _indices(x, b) -> Tensor:
    """An i64 Tensor of indices (constant arrays lifted, other integer types cast)."""
    if isinstance(x, np.ndarray):
        x = const(b, x)
    if x.dtype not in INT_DTYPES:
        raise GraphcError(f"indices must be integers, got {x.type}")
    return x if x.dtype == "i64" else F.cast(x, "i64")


# --- gathers -----------------------------------------------------------------------------------
def GatherND(data, indices, batch_dims=0):
    indices = _indices(indices, data.builder)
    b, r, q = batch_dims, data.ndim, indices.ndim
    k = indices.shape[-1] if q else 0
    if q < 1 or not 1 <= k <= r - b or data.shape[:b] != indices.shape[:b]:
        raise GraphcError(f"GatherND: indices {list(indices.shape)} do not index data "
                          f"{list(data.shape)} with batch_dims {b} (need indices [B..., ..., k] "
                          f"with the data's {b} batch dims and 1 <= k <= {r - b})")
    dims = data.shape[b:b + k]
    position = linear_index(indices, dims)
    if b:
        lead = indices.shape[:-1]
        batch_strides = [math.prod(data.shape[a + 1:b]) for a in range(b)]
        for a, stride in enumerate(batch_strides):
            position = position + iota(data, lead, a) * (stride * math.prod(dims))
    flat = F.reshape(data, (math.prod(data.shape[:b + k]),) + data.shape[b + k:])
    return F.gather(flat, position, 0)


# --- scatters ----------------------------------------------------------------------------------
_FILL = {"max": lowest, "min": highest, "mul": lambda dtype: 1}


def _reduce_first_axis(t: Tensor, reduction: str) -> Tensor:
    """max, min or product over axis 0 (the product by halving: log2 steps of products)."""
    if reduction == "max":
        return F.max(t, 0)
    if reduction == "min":
        return F.reduce_min(t, 0)
    while t.shape[0] > 1:
        half = t.shape[0] // 2
        paired = F.slice(t, [0], [half], [0]) * F.slice(t, [half], [2 * half], [0])
        t = paired if t.shape[0] % 2 == 0 else \
            F.concat([paired, F.slice(t, [2 * half], [2 * half + 1], [0])], 0)
    return F.reshape(t, t.shape[1:])


def _combine(data: Tensor, contribution: Tensor, reduction: str) -> Tensor:
    if reduction == "max":
        return F.maximum(data, contribution)
    if reduction == "min":
        return F.minimum(data, contribution)
    return data * contribution


def _scatter_compare(data, rows, updates, reduction):
    """data [N, *R] combined with updates [M, *R] at rows [M, *R] (or [M, 1...]): every update
    compared with every row, O(M·N·R); the identity of the reduction where nothing lands."""
    x = F.cast(data, "i64") if data.dtype == "bool" else data
    u = F.cast(updates, "i64") if updates.dtype == "bool" else updates
    n, tail = x.shape[0], (1,) * (x.ndim - 1)
    hot = F.equal(F.reshape(rows, (rows.shape[0], 1) + rows.shape[1:]),
                  iota(x, (1, n) + tail, 1))
    fill = _FILL[reduction](np.dtype(x.type.np_dtype))
    spread = F.where(hot, F.reshape(u, (u.shape[0], 1) + u.shape[1:]), fill)
    return back_to(_combine(x, _reduce_first_axis(spread, reduction), reduction), data)


def _check_reduction(reduction: str, op: str) -> None:
    if reduction not in ("none", "add", "mul", "max", "min"):
        raise GraphcError(f"{op}: unknown reduction {reduction!r}")


def _scatter_flat(data2d, rows, updates2d, reduction):
    """data [N, R] with updates [M, R] at rows [M] (none or add), through scatter_rows."""
    x, u = as_float(data2d), as_float(updates2d)
    if u.dtype != x.dtype:
        u = F.cast(u, x.dtype)
    return back_to(F.scatter_rows(x, rows, u, reduction=reduction), data2d)


def ScatterND(data, indices, updates, reduction="none"):
    _check_reduction(reduction, "ScatterND")
    indices = _indices(indices, data.builder)
    k = indices.shape[-1] if indices.ndim else 0
    lead = indices.shape[:-1]
    if not 1 <= k <= data.ndim or updates.shape != lead + data.shape[k:]:
        raise GraphcError(f"ScatterND: indices {list(indices.shape)} and updates "
                          f"{list(updates.shape)} do not fit data {list(data.shape)} (need "
                          f"indices [..., k] with 1 <= k <= {data.ndim} and updates "
                          f"indices.shape[:-1] + data.shape[k:])")
    m = math.prod(lead)
    if m == 0:
        return data
    rows = F.reshape(linear_index(indices, data.shape[:k]), (m,))
    n, rest = math.prod(data.shape[:k]), data.shape[k:]
    if reduction in ("none", "add"):
        out = _scatter_flat(F.reshape(data, (n, math.prod(rest))), rows,
                            F.reshape(updates, (m, math.prod(rest))), reduction)
    else:
        out = _scatter_compare(F.reshape(data, (n,) + rest), F.reshape(rows, (m,) + (1,) *
                               len(rest)), F.reshape(updates, (m,) + rest), reduction)
    return F.reshape(out, data.shape)


def _element_positions(data, position, axis):
    """ScatterElements' targets as row-major positions in data: the index along `axis`, the
    update's own coordinates on the other axes."""
    strides = [math.prod(data.shape[a + 1:]) for a in range(data.ndim)]
    total = position * strides[axis] if strides[axis] != 1 else position
    for a in range(data.ndim):
        if a != axis:
            total = total + iota(data, position.shape, a) * strides[a]
    return total


def _moved(x, axis):
    perm = [axis] + [a for a in range(x.ndim) if a != axis]
    return F.transpose(x, perm) if axis else x


def ScatterElements(data, indices, updates, axis=0, reduction="none"):
    _check_reduction(reduction, "ScatterElements")
    indices = _indices(indices, data.builder)
    r = data.ndim
    axis = _axis(axis, r, "ScatterElements")
    if indices.shape != updates.shape or indices.ndim != r or any(
            i > d for a, (i, d) in enumerate(zip(indices.shape, data.shape)) if a != axis):
        raise GraphcError(f"ScatterElements: indices {list(indices.shape)} and updates "
                          f"{list(updates.shape)} must have one shape, of data's rank and "
                          f"within data {list(data.shape)} off axis {axis}")
    m = indices.type.size
    if m == 0:
        return data
    position = checked_index(indices, data.shape[axis])
    if reduction in ("none", "add"):
        rows = F.reshape(_element_positions(data, position, axis), (m,))
        out = _scatter_flat(F.reshape(data, (data.type.size, 1)), rows,
                            F.reshape(updates, (m, 1)), reduction)
        return F.reshape(out, data.shape)
    # axis first; indices smaller than data off the axis are padded with -1, which hits no row
    x, rows, u = _moved(data, axis), _moved(position, axis), _moved(updates, axis)
    grow = [0] * r + [0] + [d - i for d, i in zip(x.shape[1:], rows.shape[1:])]
    if any(grow):
        rows, u = F.pad(rows, grow, value=-1.0), F.pad(u, grow)
    out = _scatter_compare(x, rows, u, reduction)
    inverse = [int(p) for p in np.argsort([axis] + [a for a in range(r) if a != axis])]
    return F.transpose(out, inverse) if axis else out


# --- ranges and masks --------------------------------------------------------------------------
def Range(start, limit, delta):
    """Folded at import (start, limit and delta are static), as onnx's reference computes it."""
    first, end, step = (np.asarray(v).reshape(()) for v in (start, limit, delta))
    if step == 0:
        raise GraphcError("Range: delta is 0")
    return np.arange(first.item(), end.item(), step.item()).astype(first.dtype)


def Trilu(input, k=None, upper=1):
    """The upper (j - i >= k) or lower (j - i <= k) triangle of the last two axes, 0 elsewhere."""
    if input.ndim < 2:
        raise GraphcError(f"Trilu: input must have rank >= 2, got {list(input.shape)}")
    offset = 0 if k is None else _int(k, "k", "Trilu")
    m, n = input.shape[-2:]
    diagonal = iota(input, (1, n), 1) - iota(input, (m, 1), 0)
    keep = diagonal >= offset if upper else diagonal <= offset
    return F.where(keep, input, 0)


def OneHot(indices, depth, values, axis=-1):
    """values[1] where the (wrapped) index equals the position along the new axis, values[0]
    elsewhere (also for indices out of range); non-integer indices are truncated."""
    classes = _int(depth, "depth", "OneHot")
    if classes < 1:
        raise GraphcError(f"OneHot: depth must be >= 1, got {classes}")
    if values.type.size != 2:
        raise GraphcError(f"OneHot: values must hold [off, on], got {list(values.shape)}")
    index = indices if indices.dtype == "i64" else F.cast(indices, "i64")
    index = F.where(index < 0, index + classes, index)
    r = index.ndim
    axis = _axis(axis, r + 1, "OneHot")
    index = F.reshape(index, index.shape[:axis] + (1,) + index.shape[axis:])
    hot = F.equal(index, iota(index, (1,) * axis + (classes,) + (1,) * (r - axis), axis))
    flat = F.reshape(values, (2,))
    off, on = (F.reshape(F.slice(flat, [j], [j + 1]), ()) for j in (0, 1))
    return F.where(hot, on, off)


def _shift(y: Tensor, axis: int, by: int, reverse: bool, fill: float) -> Tensor:
    """y moved `by` places along `axis` (toward the end, or the start if reverse), `fill` in."""
    pads = [0] * (2 * y.ndim)
    pads[axis], pads[y.ndim + axis] = (-by, by) if reverse else (by, -by)
    return F.pad(y, pads, value=fill)


def log_scan(x: Tensor, axis, combine, identity: float, exclusive, reverse, op: str) -> Tensor:
    """The inclusive scan of the associative `combine` (identity `identity`) along the static
    `axis` in ceil(log2 n) steps y = combine(y, shift(y, 1, 2, 4, ...)) (O(n log n) combines,
    exact for integers), then one more shift if exclusive; reverse scans from the end."""
    if x.dtype == "bool" or x.ndim == 0:
        raise GraphcError(f"{op}: need a numeric tensor of rank >= 1, got {x.type}")
    a = _axis(_int(axis, "axis", op), x.ndim, op)
    n, y, step = x.shape[a], x, 1
    while step < n:
        y = combine(y, _shift(y, a, step, bool(reverse), identity))
        step *= 2
    return _shift(y, a, 1, bool(reverse), identity) if exclusive and n else y


def CumSum(x, axis, exclusive=0, reverse=0):
    return log_scan(x, axis, F.add, 0.0, exclusive, reverse, "CumSum")


# --- TopK --------------------------------------------------------------------------------------
def _sort_key(x: Tensor) -> Tensor:
    """What TopK compares: x, with NaN as +inf (so every element has a place)."""
    return F.where(F.is_nan(x), math.inf, x) if x.type.is_float else x


def _top_by_picking(x, key, k, axis, largest):
    """k rounds: the best not yet taken (the lowest index among equals), O(k·n)."""
    n = x.shape[axis]
    position = iota(x, x.shape, axis)
    fill = (lowest if largest else highest)(np.dtype(key.type.np_dtype))
    best_of = F.max if largest else F.reduce_min
    taken, values, indices = None, [], []
    for _ in range(k):
        candidates = key if taken is None else F.where(taken, fill, key)
        hit = F.equal(key, best_of(candidates, axis, keepdims=True))
        if taken is not None:
            hit = F.logical_and(hit, F.logical_not(taken))
        index = F.reduce_min(F.where(hit, position, n), axis, keepdims=True)
        chosen = F.equal(position, index)
        values.append(F.sum(F.where(chosen, x, 0), axis, keepdims=True))
        indices.append(index)
        taken = chosen if taken is None else F.logical_or(taken, chosen)
    return F.concat(values, axis), F.concat(indices, axis)


def _top_by_rank(x, key, k, axis, largest):
    """Each element's rank (how many elements beat it) from an n x n comparison, O(n²); the
    p-th output is the element of rank p."""
    n, r = x.shape[axis], x.ndim
    mine = F.unsqueeze(key, axis + 1)    # element i on axis, j on axis + 1
    theirs = F.unsqueeze(key, axis)
    pair = (1,) * axis + (n, n) + (1,) * (r - axis - 1)
    earlier = F.less(iota(x, pair, axis + 1), iota(x, pair, axis))  # j < i
    beats = F.greater(theirs, mine) if largest else F.less(theirs, mine)
    beats = F.logical_or(beats, F.logical_and(F.equal(theirs, mine), earlier))
    rank = F.unsqueeze(F.sum(F.cast(beats, "i64"), axis + 1), axis)  # [..., 1, n, ...]
    picks = (1,) * axis + (k, 1) + (1,) * (r - axis - 1)
    place = F.equal(rank, iota(x, picks, axis))                       # [..., k, n, ...]
    values = F.sum(F.where(place, F.unsqueeze(x, axis), 0), axis + 1)
    index = iota(x, (1,) * axis + (1, n) + (1,) * (r - axis - 1), axis + 1)
    return values, F.sum(F.where(place, index, 0), axis + 1)


def TopK(X, K, axis=-1, largest=1, sorted=1):
    """Values and int64 indices of the k largest (or smallest) along axis, best first (also
    for sorted=0, which leaves the order open); the values' gradient reaches X."""
    if X.ndim == 0:
        raise GraphcError("TopK: X must have rank >= 1")
    a = _axis(axis, X.ndim, "TopK")
    k, n = _int(K, "K", "TopK"), X.shape[a]
    if not 0 <= k <= n:
        raise GraphcError(f"TopK: K = {k} is outside [0, {n}] for axis {a} of "
                          f"{list(X.shape)}")
    x = F.cast(X, "i64") if X.dtype == "bool" else X
    if k == 0:
        shape = X.shape[:a] + (0,) + X.shape[a + 1:]
        return (const(X.builder, np.zeros(shape, X.type.np_dtype)),
                const(X.builder, np.zeros(shape, np.int64)))
    pick = _top_by_picking if 4 * k <= n else _top_by_rank
    values, indices = pick(x, _sort_key(x), k, a, bool(largest))
    return back_to(values, X), indices
