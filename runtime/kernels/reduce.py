"""Lowering of `reduce` kernels: reductions over the same axes of one domain, with their
elementwise producers and consumers (see passes/fusion.py).

Input: a `reduce` fused kernel (runtime/kernels/abi.py's Kernel), its IndexEval and its plan
(runtime/kernels/reduce_layout.py). Output: the kernel's loops, in one of two schemes.

- Rows, when the reduced axes are the trailing ones (softmax, layer norm, a loss) and every
  value is read within its own row: one loop over the rows; per row, each reduction in body
  order is one pass over the row, accumulated in registers with combines the loop vectoriser
  may split across lanes (sum: `fadd reassoc`; max/min: a NaN-free compare-select plus a NaN
  flag, so NaN still propagates); a full-domain value computed in one pass and read by a later
  one (softmax's exp(x - max)) is kept in a row buffer instead of being recomputed; then the
  row's full-domain outputs, and its reduced-shape outputs. A row of at most UNROLLED_ROW
  elements (a pooling window, a conv's taps) is straight-line code, so the loop over rows is
  the one the vectoriser works on.
- Whole domain, otherwise (e.g. a bias gradient summed over the batch): each reduction in turn
  over the whole domain, into one accumulator per kept index. Reduced axes both before and
  after a kept one run in memory order, each trailing run combined in a register; otherwise
  the kept axes are innermost and contiguous when they trail (vectorised across
  accumulators). Then the full-domain outputs (those needing no reduction already stored in
  the first pass, unless the kernel writes in place).

Either way each reduction's per-row results end in a scratch array, and the outputs at the
reduced shape are evaluated from those after all rows.
"""
from __future__ import annotations

import math

import numpy as np
from graphc.runtime.emit.emitter import (
    I1,
    I64,
    REG_TYPES,
    constant,
    fit,
    for_range,
    is_float,
    load,
    store,
)
from graphc.runtime.emit.index_eval import IndexEval, Scratch, flat_offset, loop_nest, unflatten
from graphc.runtime.kernels.reduce_layout import (
    UNROLLED_ROW,
    full_outputs,
    layout,
    reductions,
    row_outputs,
    row_plan,
)
from llvmlite import ir

from graphc.ir import Graph, Node, Value
from graphc.ops.registry import get_op

_NO_NAN = ("nnan", "nsz")  # lets the vectoriser treat a compare-select as a max/min


class Accumulator:
    """A reduction's running value for one row, in allocas that become registers. Float sums
    may be reassociated and max/min compare as if there were no NaN (a NaN is tracked by a
    flag), so the loop vectoriser can keep one partial result per lane."""

    def __init__(self, kernel, node: Node):
        self.b, self.e = kernel.b, kernel.e
        self.op = get_op(node.op)
        self.combine, identity = self.op.reducer
        self.dtype = dtype = node.output.type.dtype
        self.identity = constant(dtype, identity)
        self.is_float = is_float(self.identity)
        with self.b.goto_entry_block():
            self.cell = self.b.alloca(REG_TYPES[dtype])
            self.nan = self.b.alloca(I1) if self.combine in ("max", "min") else None

    def reset(self) -> None:
        self.b.store(self.identity, self.cell)
        if self.nan is not None:
            self.b.store(ir.Constant(I1, 0), self.nan)

    def add(self, x: ir.Value) -> None:
        b, acc = self.b, self.b.load(self.cell)
        if self.is_float and self.combine == "add":
            new = b.fadd(acc, x, flags=("reassoc",))
        elif self.is_float and self.nan is not None:
            # A NaN x makes `new` poison; the NaN flag then selects NaN as the result, and a
            # select's unchosen operand may be poison. (Cleaning x first stops vectorisation.)
            is_nan = b.fcmp_unordered("uno", x, x)
            better = b.fcmp_ordered(">" if self.combine == "max" else "<", x, acc, flags=_NO_NAN)
            new = b.select(better, x, acc, flags=_NO_NAN)
            b.store(b.or_(b.load(self.nan), is_nan), self.nan)
        else:
            new = getattr(self.e, self.combine)(acc, x)
        b.store(new, self.cell)

    def partial(self) -> ir.Value:
        """The combined value so far (NaN if one was seen), before any finalize."""
        value = self.b.load(self.cell)
        if self.is_float and self.nan is not None:
            value = self.b.select(self.b.load(self.nan),
                                  ir.Constant(value.type, float("nan")), value)
        return value

    def result(self, count: int) -> ir.Value:
        """The row's result in its dtype (narrow ints wrapped, f16/bf16 rounded: they were
        accumulated in the wider register)."""
        value = self.partial()
        if self.op.finalize is not None:
            value = self.op.finalize(self.e, value, count)
        return fit(self.b, value, self.dtype)


def emit_reduce(kernel, ev: IndexEval) -> None:
    """The rows scheme when `row_plan` allows it, else the whole-domain scheme; then the
    outputs at the reduced shape."""
    b, lay, plan = kernel.b, layout(ev.body), row_plan(ev.body)
    scratch = Scratch(b, kernel.scratch, kernel.scratch_bytes)
    accs = {r: scratch.array(r.output.type.dtype, lay.rows) for r in reductions(ev.body)}
    in_row = []
    if plan is None:
        _emit_whole(kernel, ev, accs)
    else:
        row_len = math.prod(lay.reduced_shape)
        in_row = row_outputs(ev.body)
        _emit_rows(kernel, ev, accs, {v: (k, scratch.array(v.type.dtype, row_len))
                                      for v, k in plan.items()}, in_row)
    full = {v for _, v in full_outputs(ev.body, lay)} | {v for _, v in in_row}
    rowwise = [(j, v) for j, v in enumerate(ev.body.outputs.values()) if v not in full]
    if rowwise and all(v.type.shape in (lay.kept_shape, lay.keepdims) for _, v in rowwise):
        # loops over the kept axes: affine offsets (no division of a flat row number)
        with loop_nest(b, lay.kept_shape, "row") as kept_idx, ev.scope():
            ev.store_all(_at_row(lay, kept_idx, rowwise))
    elif rowwise:
        with for_range(b, lay.rows, "row") as row, ev.scope():
            ev.store_all([(j, v, unflatten(b, row, v.type.shape)) for j, v in rowwise])


def _emit_rows(kernel, ev: IndexEval, accs: dict[Node, ir.Value],
               buffers: dict[Value, tuple[int, ir.Value]],
               in_row: list[tuple[int, Value]]) -> None:
    b, lay = kernel.b, layout(ev.body)
    count = math.prod(lay.reduced_shape)  # 0 for an empty axis: mean is NaN
    cells = {r: Accumulator(kernel, r) for r in accs}
    with loop_nest(b, lay.kept_shape, "r") as kept_idx:
        row = flat_offset(b, kept_idx, lay.kept_shape)
        for k, (r, acc) in enumerate(accs.items()):
            cells[r].reset()
            kept_here = [(v, ptr) for v, (pass_, ptr) in buffers.items() if pass_ == k]

            def accumulate(red_idx, r=r, kept_here=kept_here):
                idx = lay.merge(kept_idx, red_idx)
                cells[r].add(ev.at(r.inputs[0], idx))
                at = flat_offset(b, red_idx, lay.reduced_shape)
                for v, ptr in kept_here:
                    store(b, ev.at(v, idx), ptr, at, v.type.dtype)
            _over_row(b, ev, lay.reduced_shape, "a", accumulate)
            value = cells[r].result(count)
            store(b, value, acc, row, r.output.type.dtype)
            ev.fixed[r.output] = value  # read within this row only (row_plan checked)
            ev.partial.update((v, (ptr, lay.axes)) for v, ptr in kept_here)
        full = full_outputs(ev.body, lay)
        if full:
            _over_row(b, ev, lay.reduced_shape, "w", lambda red_idx: ev.store_all(
                [(j, v, lay.merge(kept_idx, red_idx)) for j, v in full]))
        if in_row:
            with ev.scope():
                ev.store_all(_at_row(lay, kept_idx, in_row))
    for r, acc in accs.items():
        del ev.fixed[r.output]
        ev.ptr[r.output] = acc
    for v in buffers:
        del ev.partial[v]


def _at_row(lay, kept_idx, outputs: list[tuple[int, Value]]) -> list[tuple[int, Value, tuple]]:
    """store_all's entries for outputs at the kept shape or the keepdims shape, at one row."""
    zeros = tuple(ir.Constant(I64, 0) for _ in lay.axes)
    return [(j, v, kept_idx if v.type.shape == lay.kept_shape else lay.merge(kept_idx, zeros))
            for j, v in outputs]


def _over_row(b: ir.IRBuilder, ev: IndexEval, shape, name: str, body) -> None:
    """`body(index)` at every index of a row: a loop nest, or for a row of at most
    UNROLLED_ROW elements (a 2x2 pooling window) straight-line code, so that the loop over
    rows is the innermost one and the vectoriser works across rows."""
    if 0 < math.prod(shape) <= UNROLLED_ROW:
        for index in np.ndindex(*shape):
            with ev.scope():
                body(tuple(ir.Constant(I64, i) for i in index))
        return
    with loop_nest(b, shape, name) as index, ev.scope():
        body(index)


def _uses_reductions(body: Graph, v: Value) -> bool:
    producer = {x: n for n in body.nodes for x in n.outputs}
    stack, seen = [v], set()
    while stack:
        node = producer.get(stack.pop())
        if node is None or node in seen:
            continue
        if get_op(node.op).kind == "reduction":
            return True
        seen.add(node)
        stack.extend(node.inputs)
    return False


def _emit_runs(kernel, ev: IndexEval, accs: dict[Node, ir.Value], run: int) -> None:
    """Reduced axes both before and after a kept one (a bias gradient, sum over N, H, W):
    the domain in memory order, each trailing run of `run` reduced axes combined in a register
    (vectorisable) and then into its kept slot. Full-domain outputs that need no reduction
    (the gradient itself) are stored in the first pass instead of computed again."""
    b, e, lay = kernel.b, kernel.e, layout(ev.body)
    outer, inner = lay.domain[:-run], lay.domain[-run:]
    full = full_outputs(ev.body, lay)
    early = [] if kernel.aliased else \
        [(j, v) for j, v in full if not _uses_reductions(ev.body, v)]  # (in place: all late)
    cells = {r: Accumulator(kernel, r) for r in accs}
    for k, (r, acc) in enumerate(accs.items()):
        dtype, combine = r.output.type.dtype, get_op(r.op).reducer[0]
        stored = early if k == 0 else []
        _init(kernel, r, acc)
        with loop_nest(b, outer, "o") as outer_idx, ev.scope():
            cells[r].reset()

            def accumulate(inner_idx, r=r, stored=stored):
                idx = tuple(outer_idx) + tuple(inner_idx)
                cells[r].add(ev.at(r.inputs[0], idx))
                for j, v in stored:
                    store(b, ev.at(v, idx), kernel.outs[j], flat_offset(b, idx, v.type.shape),
                          v.type.dtype)
            _over_row(b, ev, inner, "i", accumulate)
            slot = flat_offset(b, tuple(outer_idx[d] for d in lay.kept), lay.kept_shape)
            store(b, getattr(e, combine)(load(b, acc, slot, dtype), cells[r].partial()), acc,
                  slot, dtype)
        _finalize(kernel, r, acc)
        ev.ptr[r.output] = acc
    _store_full(kernel, ev, [(j, v) for j, v in full if (j, v) not in early])


def _init(kernel, r: Node, acc: ir.Value) -> None:
    """Every slot of a reduction's accumulator array at the reduction's identity."""
    dtype, identity = r.output.type.dtype, get_op(r.op).reducer[1]
    with for_range(kernel.b, layout(kernel.node.attrs["body"]).rows, "init") as row:
        store(kernel.b, constant(dtype, identity), acc, row, dtype)


def _finalize(kernel, r: Node, acc: ir.Value) -> None:
    """A mean's division (the op's finalize) applied to every slot."""
    op, lay = get_op(r.op), layout(kernel.node.attrs["body"])
    if op.finalize is not None:
        b, dtype = kernel.b, r.output.type.dtype
        count = math.prod(lay.reduced_shape)  # 0 for an empty axis: mean is NaN
        with for_range(b, lay.rows, "fin") as row:
            store(b, op.finalize(kernel.e, load(b, acc, row, dtype), count), acc, row, dtype)


def _store_full(kernel, ev: IndexEval, outputs: list[tuple[int, Value]]) -> None:
    """Full-domain outputs, in one loop nest over the domain after the reductions."""
    if outputs:
        with loop_nest(kernel.b, layout(ev.body).domain, "w") as idx, ev.scope():
            ev.store_all([(j, v, idx) for j, v in outputs])


def _emit_whole(kernel, ev: IndexEval, accs: dict[Node, ir.Value]) -> None:
    """Each reduction accumulates into its scratch array with one slot per row, in body order;
    trailing reduced axes loop innermost (row order), leading ones outermost (column order, so
    the kept axis is contiguous). Then the full-shape outputs are evaluated and stored."""
    b, e, lay = kernel.b, kernel.e, layout(ev.body)
    run = next((t for t in range(len(lay.domain), 0, -1)
                if set(range(len(lay.domain) - t, len(lay.domain))) <= set(lay.axes)), 0)
    if 0 < run < len(lay.axes) and not lay.trailing:
        _emit_runs(kernel, ev, accs, run)
        return
    order = list(lay.kept) + list(lay.axes) if lay.trailing else list(lay.axes) + list(lay.kept)
    for r, acc in accs.items():
        dtype, combine = r.output.type.dtype, get_op(r.op).reducer[0]
        _init(kernel, r, acc)
        with loop_nest(b, tuple(lay.domain[d] for d in order), "a") as loop_idx, ev.scope():
            idx = tuple(dict(zip(order, loop_idx))[d] for d in range(len(lay.domain)))
            slot = flat_offset(b, tuple(idx[d] for d in lay.kept), lay.kept_shape)
            value = ev.at(r.inputs[0], idx)
            store(b, getattr(e, combine)(load(b, acc, slot, dtype), value), acc, slot, dtype)
        _finalize(kernel, r, acc)
        ev.ptr[r.output] = acc
    _store_full(kernel, ev, full_outputs(ev.body, lay))

