"""A matmul whose left operand is one-hot, lowered as a scatter-add instead of a GEMM.

Input: a matmul kernel's IndexEval and its left operand A. `one_hot_rows` recognises
A = cast(q == iota) (possibly transposed) whose iota runs along A's rows: column p of A is 1 at
row q(p) and 0 elsewhere (q(p) outside the rows: all 0). That is how a gather's gradient
(`d data = one_hot(indices)ᵀ @ g`, graphc/ops/shape.py) and a reflect/edge pad's adjoint are
built. Output: `emit_scatter_rows`, C[q(p), :] += B[p, :] for every column p of A, then the
kernel's epilogue on each block of C: O(k·n) work instead of O(m·k·n). Out-of-range q(p)
contribute nothing, exactly as their all-zero columns of A do, and nothing is written outside C.
Unlike a GEMM, a NaN or infinity in B only reaches the row it is added to (0 · NaN is not
formed), which is what the gradient of a gather means.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from graphc.runtime.emit.emitter import I64, constant, for_range, for_span, load, store
from graphc.runtime.emit.index_eval import Index, IndexEval, broadcast_index, view_index
from llvmlite import ir

from graphc.ir import Value
from graphc.ops.linalg import contiguous_strides
from graphc.ops.registry import get_op


@dataclass(frozen=True)
class OneHot:
    """A = view(cast(equal(index, iota))): `index` is q, read at H's index of each column."""

    hot: Value        # H = cast(equal(...)), what A is a view of
    index: Value      # q, the operand of `equal` that is not the iota
    view: tuple[int, ...]  # A's element strides into H


def _is_iota_along(ev: IndexEval, v: Value, shape: tuple[int, ...], axis: int) -> bool:
    """Is `v` a compile-time constant 0, 1, ..., n-1 along `axis` of `shape` (1 elsewhere)?"""
    if v not in ev.consts or v.type.dtype != "i64":
        return False
    dims = (1,) * (len(shape) - v.type.rank) + tuple(v.type.shape)
    if any(d != (shape[axis] if k == axis else 1) for k, d in enumerate(dims)):
        return False
    return np.array_equal(np.asarray(ev.consts[v]).reshape(-1), np.arange(shape[axis]))


def one_hot_rows(ev: IndexEval, a: Value) -> OneHot | None:
    """The one-hot structure of the matmul's left operand `a`, if it has one (see above)."""
    hot, view = a, contiguous_strides(a.type.shape)
    node = ev.producer.get(a)
    if node is not None and node.op != "cast":
        op = get_op(node.op)
        if op.kind != "movement" or op.view is None or op.index_map is not None:
            return None
        hot = node.inputs[0]
        view = tuple(op.view(hot.type, a.type, **node.attrs))
        node = ev.producer.get(hot)
    eq = ev.producer.get(node.inputs[0]) if node is not None and node.op == "cast" else None
    if eq is None or eq.op != "equal" or hot.type.dtype != a.type.dtype or a.type.shape[-2] < 2:
        return None
    shape = hot.type.shape
    by_stride = {s: d for d, (s, n) in enumerate(zip(contiguous_strides(shape), shape)) if n > 1}
    mapped = [by_stride.get(s) for s, n in zip(view, a.type.shape) if n > 1]
    sizes = [n for n in a.type.shape if n > 1]
    if None in mapped or len(set(mapped)) != len(mapped) or \
            any(shape[d] != n for d, n in zip(mapped, sizes)):
        return None  # not a permutation of H's dims
    axis = by_stride.get(view[-2])
    for q, iota in (eq.inputs, eq.inputs[::-1]):
        lead = len(shape) - q.type.rank
        if q.type.dtype == "i64" and _is_iota_along(ev, iota, shape, axis) and \
                (axis < lead or q.type.shape[axis - lead] == 1):
            return OneHot(hot, q, view)
    return None


def emit_scatter_rows(kernel, ev: IndexEval, hot: OneHot, a: Value, a_prefix: Index, n: int,
                      read_b: Callable, epilogue: Callable, cblock: ir.Value,
                      capacity: int) -> None:
    """C = A @ B (n columns) for one batch element as C[q(p), :] += B[p, :], in blocks of
    columns that fit the GEMM's C block (`capacity` elements); with several parts each part
    owns a range of C's rows."""
    b, e = kernel.b, kernel.e
    *_, m, k = a.type.shape
    width = max(1, min(n, capacity // m))
    if kernel.parts > 1:
        parts = ir.Constant(I64, kernel.parts)
        lo = b.udiv(b.mul(kernel.part, ir.Constant(I64, m)), parts)
        hi = b.udiv(b.mul(b.add(kernel.part, ir.Constant(I64, 1)), ir.Constant(I64, m)), parts)
    else:
        lo, hi = ir.Constant(I64, 0), ir.Constant(I64, m)

    def block(c0: ir.Value, cols: int) -> None:
        dtype = a.type.dtype
        with for_span(b, lo, hi, "zi") as i, for_range(b, cols, "zj") as j:
            store(b, constant(dtype, 0), cblock, b.add(b.mul(i, ir.Constant(I64, width)), j),
                  dtype)
        with for_range(b, k, "sp") as p, ev.scope():
            h_idx = view_index(b, a_prefix + (ir.Constant(I64, 0), p), hot.view, a.type.shape,
                               hot.hot.type.shape)
            row = ev.at(hot.index, broadcast_index(h_idx, hot.index.type.shape,
                                                   hot.hot.type.shape))
            inside = b.and_(b.icmp_signed(">=", row, lo), b.icmp_signed("<", row, hi))
            with b.if_then(inside):
                base = b.mul(row, ir.Constant(I64, width))
                with for_range(b, cols, "sj") as j:
                    at = b.add(base, j)
                    value = e.add(load(b, cblock, at, dtype), read_b(p, b.add(c0, j)))
                    store(b, value, cblock, at, dtype)
        with for_span(b, lo, hi, "ei") as i, for_range(b, cols, "ej") as j:
            c = load(b, cblock, b.add(b.mul(i, ir.Constant(I64, width)), j), dtype)
            epilogue(i, b.add(c0, j), c)

    full, tail = divmod(n, width)
    if full:
        with for_range(b, full, "sc") as jc:
            block(b.mul(jc, ir.Constant(I64, width)), width)
    if tail:
        block(ir.Constant(I64, full * width), tail)
