"""Lowering of fused kernels: a body graph evaluated at loop indices, one loop nest per kernel.

Input: a `fused` node (see passes/fusion.py) inside a `Kernel` whose arguments are the node's
outputs then its operands. Output: the kernel's instructions. Every body value is evaluated on
demand at a multi-index (`IndexEval.at`): operands are loaded with row-major strides of their
own shape, movement ops (transpose, reshape) remap the index, elementwise ops broadcast it and
run their OpDef's scalar body, and reduction/matmul results are the accumulator of the current
row or element. All outputs of an iteration are computed before any is stored, so a kernel may
write an update into the buffer it reads (in place) at the same index.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping

import numpy as np
from llvmlite import ir

from graphc.errors import CompileError
from graphc.ir import Graph, Node, Value
from graphc.ops.linalg import contiguous_strides
from graphc.ops.registry import get_op
from graphc.types import TensorType

from .gemm import Gemm, gemm_buffers, gemm_scratch
from .llvm_emitter import I64, MEM_TYPES, REG_TYPES, constant, for_range, load, store

ZERO = ir.Constant(I64, 0)
Index = tuple[ir.Value, ...]


def flat_offset(b: ir.IRBuilder, idx: Index, shape) -> ir.Value:
    """Σ idx[d] * stride[d] for a row-major array of `shape` (size-1 dims skipped)."""
    offset = ZERO
    for i, stride, n in zip(idx, contiguous_strides(shape), shape):
        if n == 1:
            continue
        term = i if stride == 1 else b.mul(i, ir.Constant(I64, stride), flags=("nsw",))
        offset = term if offset is ZERO else b.add(offset, term, flags=("nsw",))
    return offset


def unflatten(b: ir.IRBuilder, flat: ir.Value, shape) -> Index:
    """The multi-index of a row-major flat offset (udiv/urem by constants)."""
    out = []
    for stride, n in zip(contiguous_strides(shape), shape):
        if n == 1:
            out.append(ZERO)
            continue
        q = flat if stride == 1 else b.udiv(flat, ir.Constant(I64, stride))
        out.append(q if stride * n >= math.prod(shape) else b.urem(q, ir.Constant(I64, n)))
    return tuple(out)


def view_index(b: ir.IRBuilder, idx: Index, view, out_shape, in_shape) -> Index | None:
    """The input multi-index of a strided view without going through the flat offset, when
    the view permutes whole dims (a transpose) or regroups adjacent dims (a reshape of a dense
    array): only the dims inside a regrouped block need a division. None: use the flat offset.
    """
    in_strides = contiguous_strides(in_shape)
    by_stride = {s: p for p, (s, n) in enumerate(zip(in_strides, in_shape)) if n > 1}
    mapped = [ZERO] * len(in_shape)
    if all(n == 1 or (view[d] in by_stride and in_shape[by_stride[view[d]]] == n)
           for d, n in enumerate(out_shape)):
        for d, n in enumerate(out_shape):
            if n > 1:
                mapped[by_stride[view[d]]] = idx[d]
        return tuple(mapped)
    if tuple(view) != contiguous_strides(out_shape):
        return None
    groups, i, o = [], 0, 0  # blocks of adjacent dims with equal sizes on both sides
    while i < len(in_shape) or o < len(out_shape):
        gi, go, pi, po = [], [], 1, 1
        while True:
            if pi <= po and i < len(in_shape):
                gi.append(i)
                pi *= in_shape[i]
                i += 1
            elif o < len(out_shape):
                go.append(o)
                po *= out_shape[o]
                o += 1
            else:
                break
            if pi == po and (i == len(in_shape) or in_shape[i] != 1 or pi > 1):
                break
        if pi != po:
            return None
        groups.append((gi, go))
    for gi, go in groups:
        flat = flat_offset(b, tuple(idx[d] for d in go), tuple(out_shape[d] for d in go))
        if len(gi) == 1:
            mapped[gi[0]] = flat
        else:
            parts = unflatten(b, flat, tuple(in_shape[d] for d in gi))
            for d, value in zip(gi, parts):
                mapped[d] = value
    return tuple(mapped)


def broadcast_index(idx: Index, in_shape, out_shape) -> Index:
    """Index into `in_shape` of the element NumPy broadcasting reads at `idx` of `out_shape`."""
    lead = len(out_shape) - len(in_shape)
    return tuple(ZERO if n == 1 else idx[lead + d] for d, n in enumerate(in_shape))


class IndexEval:
    """Evaluates body values at indices, memoised within one loop body (`scope`)."""

    def __init__(self, kernel, body: Graph, consts: Mapping[Value, np.ndarray]):
        self.k, self.b, self.e = kernel, kernel.b, kernel.e
        self.body = body
        # operands and results are matched to the body's inputs and outputs by position
        self.ptr = {i.value: kernel.ins[j] for j, i in enumerate(body.inputs)}
        self.consts = {i.value: consts[v] for i, v in zip(body.inputs, kernel.node.inputs)
                       if v in consts}
        self.producer = {v: n for n in body.nodes for v in n.outputs}
        self.fixed: dict[Value, ir.Value] = {}  # a matmul's value at the current element
        self.memo: dict = {}

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Values computed inside a loop body are not reused after the loop."""
        saved = self.memo
        self.memo = dict(saved)
        try:
            yield
        finally:
            self.memo = saved

    def at(self, v: Value, idx: Index) -> ir.Value:
        if v in self.fixed:
            return self.fixed[v]
        key = (v, tuple(id(i) for i in idx))
        if key not in self.memo:
            # the entry keeps the index objects alive, so their ids cannot be reused
            self.memo[key] = (self._compute(v, idx), idx)
        return self.memo[key][0]

    def _compute(self, v: Value, idx: Index) -> ir.Value:
        if v in self.ptr:
            if v in self.consts and v.type.size == 1:
                return constant(v.type.dtype, self.consts[v].reshape(-1)[0].item())
            return load(self.b, self.ptr[v], flat_offset(self.b, idx, v.type.shape), v.type.dtype)
        node = self.producer.get(v)
        if node is None:
            raise CompileError(f"fused body reads %{v.name}, which it neither receives nor makes")
        op = get_op(node.op)
        if op.kind == "source":
            value = op.reference(**node.attrs).reshape(-1)
            if len(set(value.tolist())) != 1:
                raise CompileError(f"non-uniform constant %{v.name} inside a fused body")
            return constant(v.type.dtype, value[0].item())
        if op.kind == "elementwise":
            args = [self.at(x, broadcast_index(idx, x.type.shape, v.type.shape))
                    for x in node.inputs]
            return self._typed(op.scalar(self.e, *args, **node.attrs), v, node)
        if op.kind == "movement" and op.index_map is not None:
            result = op.index_map(lambda k, i: self.at(node.inputs[k], tuple(i)), self.e, idx,
                                  [x.type for x in node.inputs], v.type, **node.attrs)
            return self._typed(result, v, node)
        if op.kind == "movement":
            x = node.inputs[0]
            view = op.view(x.type, v.type, **node.attrs)
            flat = ZERO
            for i, stride in zip(idx, view):
                if stride and i is not ZERO:
                    term = i if stride == 1 else self.b.mul(i, ir.Constant(I64, stride))
                    flat = term if flat is ZERO else self.b.add(flat, term)
            if x in self.ptr and x not in self.consts:
                return load(self.b, self.ptr[x], flat, x.type.dtype)
            direct = view_index(self.b, idx, view, v.type.shape, x.type.shape)
            return self.at(x, direct if direct is not None else
                           unflatten(self.b, flat, x.type.shape))
        raise CompileError(f"%{v.name} ({node.op}) is only available inside its own loop")

    def _typed(self, result, v: Value, node: Node) -> ir.Value:
        if not isinstance(result, ir.Value):
            return constant(v.type.dtype, result)
        if result.type != REG_TYPES[v.type.dtype]:
            raise CompileError(f"scalar body of {node.op} returned {result.type} for {v.type}")
        return result

    def store_all(self, outputs: list[tuple[int, Value, Index]]) -> None:
        """Compute every output value first, then store them (safe for in-place writes)."""
        values = [(j, v, idx, self.at(v, idx)) for j, v, idx in outputs]
        for j, v, idx, value in values:
            store(self.b, value, self.k.outs[j], flat_offset(self.b, idx, v.type.shape),
                  v.type.dtype)


@contextlib.contextmanager
def loop_nest(b: ir.IRBuilder, shape, name: str) -> Iterator[Index]:
    """Nested counted loops over `shape`; yields the index (size-1 dims are constant 0)."""
    with contextlib.ExitStack() as stack:
        idx = []
        for d, n in enumerate(shape):
            idx.append(ZERO if n == 1 else stack.enter_context(for_range(b, n, f"{name}{d}")))
        yield tuple(idx)


def _outputs(kernel) -> list[tuple[int, Value]]:
    """(argument position, body value) of each kernel result."""
    return list(enumerate(kernel.node.attrs["body"].outputs.values()))


# --- kernel kinds ------------------------------------------------------------------------------
def emit_loop(kernel, ev: IndexEval) -> None:
    """One loop nest over the common output shape."""
    domain = kernel.node.outputs[0].type.shape
    with loop_nest(kernel.b, domain, "i") as idx, ev.scope():
        ev.store_all([(j, v, idx) for j, v in _outputs(kernel)])


def _reductions(body: Graph) -> list[Node]:
    return [n for n in body.nodes if get_op(n.op).kind == "reduction"]


def scratch_bytes(node: Node, parts: int = 1) -> int:
    """Scratch memory a fused kernel needs: one accumulator per row for each reduction; a
    packed block of B and a block of C for a matmul."""
    body, kind = node.attrs["body"], node.attrs["kind"]
    if kind == "reduce":
        return sum(r.output.type.nbytes for r in _reductions(body)) + 64 * len(_reductions(body))
    if kind == "matmul":
        (mm,) = [n for n in body.nodes if n.op == "matmul"]
        *_, m, n = mm.output.type.shape
        per_part = gemm_scratch(m, n, mm.inputs[0].type.shape[-1], mm.output.type.dtype, parts)
        return per_part * parts
    return 0


class Scratch:
    """Bump allocation of typed, 64-byte aligned arrays inside a kernel's scratch argument,
    checked at compile time against the bytes the plan reserved (`limit`), so a size
    mismatch is a CompileError and never a write past the region."""

    def __init__(self, b: ir.IRBuilder, base: ir.Value, limit: int):
        self.b, self.base, self.used, self.limit = b, base, 0, limit

    def array(self, dtype: str, count: int) -> ir.Value:
        ptr = self.b.gep(self.base, [ir.Constant(I64, self.used)], inbounds=True)
        self.used += count * TensorType((), dtype).np_dtype.itemsize + 63
        self.used -= self.used % 64
        if self.used > self.limit:
            raise CompileError(f"kernel scratch needs {self.used} bytes, {self.limit} reserved")
        return self.b.bitcast(ptr, MEM_TYPES[dtype].as_pointer())


def emit_reduce(kernel, ev: IndexEval) -> None:
    """Each reduction accumulates into a scratch array with one slot per row (kept index), in
    body order; trailing reduced axes loop innermost (row order), leading ones outermost
    (column order, so the kept axis is contiguous). Then the row-shaped outputs, then the
    full-shape outputs (e.g. softmax's e / sum) are evaluated and stored."""
    b, e = kernel.b, kernel.e
    reductions = _reductions(ev.body)
    domain = reductions[0].inputs[0].type.shape
    axes = tuple(reductions[0].attrs["axes"])
    kept = [d for d in range(len(domain)) if d not in axes]
    kept_shape = tuple(domain[d] for d in kept)
    rows = math.prod(kept_shape)
    order = list(kept) + list(axes) if all(a > k for a in axes for k in kept) else \
        list(axes) + list(kept)
    scratch = Scratch(b, kernel.scratch, kernel.scratch_bytes)
    for r in reductions:
        op, dtype = get_op(r.op), r.output.type.dtype
        combine, identity = op.reducer
        acc = scratch.array(dtype, rows)
        with for_range(b, rows, "init") as row:
            store(b, constant(dtype, identity), acc, row, dtype)
        with loop_nest(b, tuple(domain[d] for d in order), "a") as loop_idx, ev.scope():
            idx = tuple(dict(zip(order, loop_idx))[d] for d in range(len(domain)))
            slot = flat_offset(b, tuple(idx[d] for d in kept), kept_shape)
            value = ev.at(r.inputs[0], idx)
            store(b, getattr(e, combine)(load(b, acc, slot, dtype), value), acc, slot, dtype)
        if op.finalize is not None:
            count = math.prod(domain[a] for a in axes)  # 0 for an empty axis: mean is NaN
            with for_range(b, rows, "fin") as row:
                store(b, op.finalize(e, load(b, acc, row, dtype), count), acc, row, dtype)
        ev.ptr[r.output] = acc
    full = [(j, v) for j, v in _outputs(kernel)
            if v.type.shape == domain and v not in ev.ptr]
    rowwise = [(j, v) for j, v in _outputs(kernel) if (j, v) not in full]
    if rowwise:
        with for_range(b, rows, "row") as row, ev.scope():
            ev.store_all([(j, v, unflatten(b, row, v.type.shape)) for j, v in rowwise])
    if full:
        with loop_nest(b, domain, "w") as idx, ev.scope():
            ev.store_all([(j, v, idx) for j, v in full])


def emit_matmul(kernel, ev: IndexEval) -> None:
    """C = A @ B per batch element with the packed GEMM of runtime/gemm.py; the epilogue
    (every kernel output) is evaluated on each finished block of C."""
    (mm,) = [n for n in ev.body.nodes if n.op == "matmul"]
    a, bm = mm.inputs
    out = mm.output
    *batch, m, n = out.type.shape
    kk = a.type.shape[-1]
    b, dtype, parts = kernel.b, out.type.dtype, kernel.parts
    base = kernel.scratch
    if parts > 1:  # each part has its own packed B and C block
        per_part = ir.Constant(I64, gemm_scratch(m, n, kk, dtype, parts))
        base = b.gep(base, [b.mul(kernel.part, per_part)], inbounds=True)
    scratch = Scratch(b, base, gemm_scratch(m, n, kk, dtype, parts))
    packed_count, cblock_count = gemm_buffers(m, n, kk, dtype, parts)
    packed = scratch.array(dtype, packed_count)
    cblock = scratch.array(dtype, cblock_count)
    with loop_nest(b, tuple(batch), "b") as bidx:
        a_batch = broadcast_index(bidx, a.type.shape[:-2], batch)
        b_batch = broadcast_index(bidx, bm.type.shape[:-2], batch)

        def read(value, prefix):
            def reader(r, c):
                with ev.scope():
                    return ev.at(value, prefix + (r, c))
            return reader

        def epilogue(i, j, c):
            with ev.scope():
                ev.fixed[out] = c
                ev.store_all([(jj, v, tuple(bidx) + (i, j)) for jj, v in _outputs(kernel)])
                del ev.fixed[out]

        Gemm(b, dtype, m, n, kk, read(a, a_batch), read(bm, b_batch), epilogue, packed,
             cblock, affine(ev, a, a_batch), affine(ev, bm, b_batch)).emit(kernel.part, parts)


def affine(ev: IndexEval, v: Value, prefix: Index):
    """(pointer to v[prefix, 0, 0], row stride, column stride) when the matrix `v` is a kernel
    operand or a strided view (transpose, reshape) of one; None otherwise."""
    b = ev.b
    if v in ev.ptr and v not in ev.consts:
        ptr, strides = ev.ptr[v], contiguous_strides(v.type.shape)
    else:
        node = ev.producer.get(v)
        op = get_op(node.op) if node is not None else None
        if op is None or op.kind != "movement" or op.view is None:
            return None
        x = node.inputs[0]
        if x not in ev.ptr or x in ev.consts:
            return None
        ptr, strides = ev.ptr[x], tuple(op.view(x.type, v.type, **node.attrs))
    offset = ZERO
    for i, stride in zip(prefix, strides[:-2]):
        if stride and i is not ZERO:
            term = b.mul(i, ir.Constant(I64, stride))
            offset = term if offset is ZERO else b.add(offset, term)
    return b.gep(ptr, [offset], inbounds=True), strides[-2], strides[-1]


def writes_in_place_ok(node: Node, target: Value, value: Value) -> bool:
    """May fused `node` store `value` into `target`'s buffer? Only if everything in the body
    computed from `target` is computed by elementwise ops of target's own shape, i.e. read at
    the very index being written (all outputs of an iteration are computed before any store).
    A movement op (another index) or a matmul operand (other elements, read while C is stored
    block by block) anywhere downstream of `target` forbids it. In a reduce kernel a reduction
    may read it: every reduction finishes before the first store."""
    body = node.attrs["body"]
    if value.type != target.type:
        return False
    if target not in node.inputs:
        return True  # the kernel never reads the old value
    derived = {body.inputs[node.inputs.index(target)].value}
    for n in body.nodes:  # topological order: the closure of values computed from target
        if not derived.intersection(n.inputs):
            continue
        kind = get_op(n.op).kind
        if kind == "reduction" and node.attrs["kind"] == "reduce":
            continue  # its result is complete before any store
        if kind != "elementwise" or n.output.type.shape != target.type.shape:
            return False
        derived.update(n.outputs)
    return True


FUSED_EMITTERS = {"loop": emit_loop, "reduce": emit_reduce, "matmul": emit_matmul}


def emit_fused(kernel, consts: Mapping[Value, np.ndarray]) -> None:
    body = kernel.node.attrs["body"]
    kind = kernel.node.attrs["kind"]
    if kind not in FUSED_EMITTERS:
        raise CompileError(f"fused kernel of unknown kind {kind!r}")
    FUSED_EMITTERS[kind](kernel, IndexEval(kernel, body, consts))
