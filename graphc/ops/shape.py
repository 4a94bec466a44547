"""Data movement with ONNX semantics, lowered through `index_map`, and index-picking reductions.

Input: nothing (imported for its side effect). Output: registered OpDefs:
  slice(x; starts, ends, axes=None, steps=None)       ONNX Slice, attrs instead of inputs
  unslice(g; shape, starts, steps)                    slice's adjoint: g placed in zeros
  pad(x; pads=(begin..., end...), mode="constant"|"reflect"|"edge", value=0.0)  ONNX Pad
  concat(*xs; axis)                                   ONNX Concat (variadic)
  gather(data, indices: i64; axis=0)                  ONNX Gather (negative indices wrap)
  min(x; axes, keepdims=False)                        reduction (ReduceMin)
  arg_max / arg_min(x; axis=0, keepdims=True, select_last_index=False) -> i64  (composites)
Movement ops read their inputs only at clamped, in-bounds indices and select the padding value
afterwards, so one index_map serves the NumPy check and the LLVM kernel. pad, concat, gather,
min (as `reduce_min`), arg_max and arg_min have op-API functions here; slice's and unslice's
are derived from their records.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from graphc.builder import Tensor
from graphc.errors import GraphcError, ShapeError
from graphc.ops import api as F
from graphc.ops.api import _apply, _axes, _axis
from graphc.ops.elementwise import NUMERIC
from graphc.ops.losses import one_hot
from graphc.ops.reduce import _ATTRS, _max_bprop, _rule, highest
from graphc.ops.registry import NOT_DIFFERENTIABLE, REQUIRED, OpDef, register
from graphc.types import FLOAT_DTYPES, TensorType


def norm_axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis % max(rank, 1)


def _clamp(e, i, lo: int, hi: int):
    """i clamped into [lo, hi] (i64 scalars)."""
    return e.min(e.max(i, e.const(lo, i)), e.const(hi, i))


def _all(e, conds):
    out = conds[0]
    for c in conds[1:]:
        out = e.select(out, c, e.const(False, c))
    return out


# --- slice and its adjoint ------------------------------------------------------------------
def slice_plan(shape, starts, ends, axes, steps) -> list[tuple[int, int, int]]:
    """ONNX Slice normalisation: (start, step, count) for every dimension."""
    rank = len(shape)
    axes = tuple(range(len(starts))) if axes is None else axes
    steps = (1,) * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError(f"slice: starts, ends, axes and steps differ in length "
                         f"({len(starts)}, {len(ends)}, {len(axes)}, {len(steps)})")
    plan = [(0, 1, d) for d in shape]
    seen = set()
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = norm_axis(a, rank, "slice")
        if a in seen or st == 0:
            raise ShapeError(f"slice: axis {a} repeated or step 0")
        seen.add(a)
        d = shape[a]
        s, e = (s + d if s < 0 else s), (e + d if e < 0 else e)
        if st > 0:
            s, e = min(max(s, 0), d), min(max(e, 0), d)
        else:
            s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
        plan[a] = (s, st, max(0, -(-(e - s) // st)))
    return plan


def _slice_rule(types, attrs):
    (x,) = types
    plan = slice_plan(x.shape, **attrs)
    return [TensorType(tuple(c for _, _, c in plan), x.dtype)]


def _slice_reference(x, **attrs):
    plan = slice_plan(x.shape, **attrs)
    index = tuple(slice(s, s + c * st if s + c * st >= 0 else None, st) for s, st, c in plan)
    return np.array(x[index])


def _slice_index_map(at, e, idx, in_types, out_type, **attrs):
    plan = slice_plan(in_types[0].shape, **attrs)
    return at(0, [i if (s, st) == (0, 1) else e.add(e.const(s, i), e.mul(i, e.const(st, i)))
                  for i, (s, st, _) in zip(idx, plan)])


def _slice_bprop(x, y, g, **attrs):
    plan = slice_plan(x.shape, **attrs)
    return [F.unslice(g, x.shape, [s for s, _, _ in plan], [st for _, st, _ in plan])]


register(OpDef(
    name="slice", doc="ONNX Slice: starts/ends/axes/steps, negative steps and indices",
    kind="movement", infer=_slice_rule, reference=_slice_reference, bprop=_slice_bprop,
    attrs={"starts": REQUIRED, "ends": REQUIRED, "axes": None, "steps": None},
    index_map=_slice_index_map))


def _unslice_rule(types, attrs):
    (g,), shape, starts, steps = types, attrs["shape"], attrs["starts"], attrs["steps"]
    if not len(shape) == len(starts) == len(steps) == g.rank:
        raise ShapeError(f"unslice: shape, starts and steps need one entry per dim of {g}")
    for d, s, st, c in zip(shape, starts, steps, g.shape):
        if st == 0 or (c and not (0 <= s < d and 0 <= s + (c - 1) * st < d)):
            raise ShapeError(f"unslice: {c} elements from {s} by {st} leave [0, {d})")
    return [TensorType(tuple(shape), g.dtype)]


def _unslice_reference(g, shape, starts, steps):
    out = np.zeros(shape, g.dtype)
    out[tuple(slice(s, s + c * st if s + c * st >= 0 else None, st)
              for s, st, c in zip(starts, steps, g.shape))] = g
    return out


def _unslice_index_map(at, e, idx, in_types, out_type, shape, starts, steps):
    read, valid = [], []
    for i, s, st, c, d in zip(idx, starts, steps, in_types[0].shape, shape):
        if (s, st, c) == (0, 1, d):
            read.append(i)
            continue
        t = e.sub(i, e.const(s, i))
        q = t if st == 1 else e.floordiv(t, e.const(st, t))
        valid += [e.ge(q, e.const(0, q)), e.lt(q, e.const(c, q))]
        if st != 1:
            valid.append(e.eq(e.mod(t, e.const(st, t)), e.const(0, t)))
        read.append(_clamp(e, q, 0, max(c - 1, 0)))
    value = at(0, read)
    return e.select(_all(e, valid), value, e.const(0, value)) if valid else value


def _unslice_bprop(g, y, dy, shape, starts, steps):
    ends = [s + c * st for s, st, c in zip(starts, steps, g.shape)]
    ends = [end if end >= 0 else -d - 1 for end, d in zip(ends, shape)]
    return [F.slice(dy, starts, ends, steps=steps)]


register(OpDef(
    name="unslice", doc="the adjoint of slice: zeros of `shape` with g at the sliced positions",
    kind="movement", infer=_unslice_rule, reference=_unslice_reference, bprop=_unslice_bprop,
    attrs={"shape": REQUIRED, "starts": REQUIRED, "steps": REQUIRED},
    index_map=_unslice_index_map))


# --- pad ------------------------------------------------------------------------------------
PAD_MODES = ("constant", "reflect", "edge")


def _pad_rule(types, attrs):
    (x,), pads, mode = types, attrs["pads"], attrs["mode"]
    if len(pads) != 2 * x.rank or mode not in PAD_MODES:
        raise ShapeError(f"pad: need {2 * x.rank} pads (begins, then ends) and a mode in "
                         f"{PAD_MODES}; got {len(pads)} pads, mode {mode!r}")
    shape = tuple(d + b + e for d, b, e in zip(x.shape, pads[:x.rank], pads[x.rank:]))
    if any(d < 0 for d in shape):
        raise ShapeError(f"pad: pads {pads} crop {x.shape} below zero")
    if mode != "constant" and any(p < 0 or (p and p > (d - 1 if mode == "reflect" else d * p))
                                  for p, d in zip(pads, x.shape * 2)):
        raise ShapeError(f"pad: {mode} pads {pads} must be >= 0 (and < dim for reflect)")
    return [TensorType(shape, x.dtype)]


def _pad_reference(x, pads, mode, value):
    r = x.ndim
    crop = tuple(slice(max(-b, 0), d - max(-e, 0)) for d, b, e in zip(x.shape, pads[:r], pads[r:]))
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(pads[:r], pads[r:])]
    if mode == "constant":
        return np.pad(x[crop], widths, mode="constant", constant_values=np.asarray(value, x.dtype))
    return np.pad(x[crop], widths, mode=mode)


def _pad_source(e, t, d: int, mode: str):
    """The source index of output position t (already shifted by the begin pad)."""
    if mode == "reflect":
        t = e.select(e.lt(t, e.const(0, t)), e.neg(t), t)
        return e.select(e.ge(t, e.const(d, t)), e.sub(e.const(2 * (d - 1), t), t), t)
    return _clamp(e, t, 0, d - 1)


def _pad_index_map(at, e, idx, in_types, out_type, pads, mode, value):
    shape, r = in_types[0].shape, len(in_types[0].shape)
    read, valid = [], []
    for i, d, b, end in zip(idx, shape, pads[:r], pads[r:]):
        if b == 0 and end == 0:
            read.append(i)
            continue
        t = e.sub(i, e.const(b, i))
        if mode == "constant":
            valid += [e.ge(t, e.const(0, t)), e.lt(t, e.const(d, t))]
        read.append(_pad_source(e, t, d, mode))
    x = at(0, read)
    return e.select(_all(e, valid), x, e.const(value, x)) if valid else x


def pad_matrix(out_d: int, d: int, begin: int, mode: str, dtype: str, b):
    """The 0/1 matrix P [out_d, d] with pad(x) = P @ x along one axis (built from iota)."""
    t = b.apply("iota", [], shape=(out_d, 1), axis=0, dtype="i64") - begin
    if mode == "reflect":
        t = F.where(t < 0, -t, t)
        t = F.where(t >= d, 2 * (d - 1) - t, t)
    else:
        t = F.minimum(F.maximum(t, 0), d - 1)
    cols = b.apply("iota", [], shape=(1, d), axis=1, dtype="i64")
    return F.cast(F.equal(t, cols), dtype)


def _pad_bprop(x, y, g, pads, mode, value):
    r = x.ndim
    if mode == "constant":
        return [F.pad(g, [-p for p in pads])]
    if r == 1:  # a matrix product needs two axes
        g, x_shape = F.reshape(g, (1, g.shape[0])), (1, x.shape[0])
        pads, r = (0, pads[0], 0, pads[1]), 2
    else:
        x_shape = x.shape
    for a in range(r):  # reflect/edge: P^T along each padded axis (exact scatter-add)
        if pads[a] or pads[a + r]:
            p = pad_matrix(g.shape[a], x_shape[a], pads[a], mode, g.dtype, g.builder)
            g = F.swapaxes(F.swapaxes(g, a, -1) @ p, a, -1)
    return [F.reshape(g, x.shape)]


def pad(x: Tensor, pads: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """ONNX Pad: `pads` = (begin of each axis..., end of each axis...)."""
    return _apply("pad", x, pads=tuple(int(p) for p in pads), mode=mode, value=value)


register(OpDef(
    name="pad", doc="ONNX Pad: constant (negative pads crop), reflect or edge", kind="movement",
    infer=_pad_rule, reference=_pad_reference, bprop=_pad_bprop,
    attrs={"pads": REQUIRED, "mode": "constant", "value": 0.0}, index_map=_pad_index_map,
    dsl=pad))


# --- concat ---------------------------------------------------------------------------------
def _concat_rule(types, attrs):
    if not types:
        raise ShapeError("concat needs at least one input")
    axis = norm_axis(attrs["axis"], types[0].rank, "concat")
    first = types[0]
    for t in types[1:]:
        if t.dtype != first.dtype or t.rank != first.rank or any(
                a != b for k, (a, b) in enumerate(zip(t.shape, first.shape)) if k != axis):
            raise ShapeError(f"concat: {t} does not match {first} outside axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in types)
    return [TensorType(tuple(shape), first.dtype)]


def _offsets(types, axis: int) -> list[int]:
    return [sum(t.shape[axis] for t in types[:k]) for k in range(len(types) + 1)]


def _concat_index_map(at, e, idx, in_types, out_type, axis):
    axis = axis % out_type.rank
    off, o = _offsets(in_types, axis), idx[axis]

    def read(k):
        local = o if off[k] == 0 else e.sub(o, e.const(off[k], o))
        local = _clamp(e, local, 0, in_types[k].shape[axis] - 1)
        return at(k, tuple(idx[:axis]) + (local,) + tuple(idx[axis + 1:]))

    value = read(len(in_types) - 1)
    for k in range(len(in_types) - 2, -1, -1):
        value = e.select(e.lt(o, e.const(off[k + 1], o)), read(k), value)
    return value


def _concat_bprop(*args, axis):
    xs, g = args[:-2], args[-1]
    axis = axis % g.ndim
    off = _offsets([x.type for x in xs], axis)
    return [F.slice(g, [off[k]], [off[k + 1]], [axis]) for k in range(len(xs))]


def concat(xs: Sequence[Tensor], axis: int = 0) -> Tensor:
    return _apply("concat", *xs, axis=_axis(axis, xs[0], "concat"))


register(OpDef(
    name="concat", doc="ONNX Concat along axis (variadic)", kind="movement",
    infer=_concat_rule, reference=lambda *xs, axis: np.concatenate(xs, axis=axis),
    bprop=_concat_bprop, attrs={"axis": REQUIRED}, arity=None, index_map=_concat_index_map,
    onnx="Concat", dsl=concat))


# --- gather ---------------------------------------------------------------------------------
def _gather_rule(types, attrs):
    data, indices = types
    if indices.dtype != "i64" or data.rank == 0:
        raise ShapeError(f"gather: indices must be i64 and data at least rank 1, got "
                         f"{data} and {indices}")
    a = norm_axis(attrs["axis"], data.rank, "gather")
    return [TensorType(data.shape[:a] + indices.shape + data.shape[a + 1:], data.dtype)]


def _check_gather(types, arrays, axis=None, **attrs):
    """Indices in [-K, K). Callers that do not pass the attributes get the loosest bound (the
    largest dim): the kernel clamps, so a missed check reads a valid row, never memory."""
    data = types[0]
    if arrays[1] is None:
        return
    size = max(data.shape) if axis is None else data.shape[axis % data.rank]
    bad = (arrays[1] < -size) | (arrays[1] >= size)
    if np.any(bad):
        at = [int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape)]
        raise GraphcError(f"gather: index {int(arrays[1][tuple(at)])} at {at} is outside "
                          f"[-{size}, {size})")


def _gather_index_map(at, e, idx, in_types, out_type, axis):
    data, indices = in_types
    axis = axis % data.rank
    k = at(1, tuple(idx[axis:axis + indices.rank]))
    size = data.shape[axis]
    above = e.ge(k, e.const(-size, k))
    inside = e.select(above, e.lt(k, e.const(size, k)), above)  # -size <= k < size
    e.fail_unless(inside, f"gather: an index is outside [-{size}, {size})")
    k = e.select(e.lt(k, e.const(0, k)), e.add(k, e.const(size, k)), k)
    k = _clamp(e, k, 0, size - 1)
    return at(0, tuple(idx[:axis]) + (k,) + tuple(idx[axis + indices.rank:]))


def _gather_bprop(data, indices, y, g, axis):
    """Scatter-add as a one-hot matmul: d data[a, k, b] = sum_i [indices_i == k] g[a, i, b]
    (the kernel emitter lowers a one-hot matmul as a scatter-add, runtime/kernels/scatter.py). Without
    leading axes it is 2-D, so for a [K, D] table it has the table's shape and an optimizer
    update joins it as its epilogue."""
    axis = axis % data.ndim
    size, count = data.shape[axis], max(indices.type.size, 1)
    lead, trail = math.prod(data.shape[:axis]), math.prod(data.shape[axis + 1:])
    flat = F.reshape(indices, (count,))
    flat = F.where(flat < 0, flat + size, flat)
    hot = F.transpose(one_hot(flat, size, g.dtype))  # [K, I]
    rows = F.reshape(g, (count, trail) if lead == 1 else (lead, count, trail))
    return [F.reshape(hot @ rows, data.shape), None]


def gather(data: Tensor, indices: Tensor, axis: int = 0) -> Tensor:
    """ONNX Gather (embedding lookup for axis 0); indices are i64, negatives wrap."""
    return _apply("gather", data, indices, axis=_axis(axis, data, "gather"))


register(OpDef(
    name="gather", doc="ONNX Gather: data indexed by i64 indices along axis", kind="movement",
    infer=_gather_rule, reference=lambda d, i, axis: np.take(d, i, axis=axis),
    bprop=_gather_bprop, attrs={"axis": 0}, arity=2, index_map=_gather_index_map,
    check_inputs=_check_gather, onnx="Gather", dsl=gather))


# --- min and the index-picking reductions -----------------------------------------------------
def reduce_min(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return _apply("min", x, axes=_axes(axis, x, "min"), keepdims=bool(keepdims))


register(OpDef(
    name="min", doc="minimum over axes (NaN propagates)", kind="reduction",
    infer=_rule(NUMERIC),
    reference=lambda x, axes, keepdims: np.min(x, axis=axes, keepdims=keepdims,
                                               initial=highest(x.dtype)),
    bprop=_max_bprop, attrs=_ATTRS, reducer=("min", math.inf), dsl=reduce_min))


def _arg_rule(types, attrs):
    (x,) = types
    if x.dtype not in NUMERIC or x.rank == 0:
        raise ShapeError(f"arg_max/arg_min: need a numeric tensor of rank >= 1, got {x}")
    a = norm_axis(attrs["axis"], x.rank, "arg_max/arg_min")
    shape = tuple(1 if i == a else d for i, d in enumerate(x.shape) if attrs["keepdims"] or i != a)
    return [TensorType(shape, "i64")]


def _arg_reference(pick):
    def reference(x, axis, keepdims, select_last_index):
        axis = axis % x.ndim
        if select_last_index:
            out = x.shape[axis] - 1 - pick(np.flip(x, axis), axis=axis)
        else:
            out = pick(x, axis=axis)
        return np.expand_dims(out, axis) if keepdims else out
    return reference


def _arg_decompose(best):
    """The first (or last) index where x equals its best value, or is NaN (NumPy's rule)."""
    def decompose(x, axis, keepdims, select_last_index):
        axis = axis % x.ndim
        hit = F.equal(x, best(x, axis, keepdims=True))
        if x.dtype in FLOAT_DTYPES:
            hit = F.logical_or(hit, F.is_nan(x))
        k = x.shape[axis]
        iota = x.builder.apply("iota", [], shape=x.shape, axis=axis, dtype="i64")
        if select_last_index:
            return F.max(F.where(hit, iota, -1), axis, keepdims=keepdims)
        return reduce_min(F.where(hit, iota, k), axis, keepdims=keepdims)
    return decompose


def _arg_function(name: str):
    """The op-API function of arg_max or arg_min (the axis normalised, flags made bools)."""
    def function(x: Tensor, axis: int = 0, keepdims: bool = True,
                 select_last_index: bool = False) -> Tensor:
        return _apply(name, x, axis=_axis(axis, x, name), keepdims=bool(keepdims),
                      select_last_index=bool(select_last_index))
    function.__name__ = function.__qualname__ = name
    return function


for _name, _onnx, _pick, _best in [("arg_max", "ArgMax", np.argmax, F.max),
                                   ("arg_min", "ArgMin", np.argmin, reduce_min)]:
    register(OpDef(
        name=_name, doc=f"ONNX {_onnx}: i64 index along axis (first on ties and NaN unless "
        "select_last_index)", kind="composite",
        infer=_arg_rule, reference=_arg_reference(_pick), bprop=NOT_DIFFERENTIABLE,
        attrs={"axis": 0, "keepdims": True, "select_last_index": False},
        decompose=_arg_decompose(_best), onnx=_onnx, dsl=_arg_function(_name)))
