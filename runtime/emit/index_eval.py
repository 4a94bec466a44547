"""Index evaluation: body values of a fused kernel built as LLVM scalars at a multi-index.

Input: a kernel (runtime/kernels/abi.py) and its fused body graph. Output: `IndexEval.at(value, idx)`,
the value's element at an index (i64 scalars): operands are loaded with row-major strides of their
own shape, movement ops (transpose, reshape) remap the index, elementwise ops broadcast it and
run their OpDef's scalar body, and values the kernel emitter pins (a matmul's current element,
a reduction's accumulator array, a row buffer) are read from there. Also the index arithmetic
(flat offsets, views, broadcasting), loop nests and typed scratch arrays the emitters share.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping

import numpy as np
from graphc.runtime.emit.emitter import (
    I64,
    MEM_TYPES,
    REG_TYPES,
    constant,
    fit,
    for_range,
    load,
    store,
)
from llvmlite import ir

from graphc.errors import CompileError
from graphc.ir import Graph, Node, Value
from graphc.ops.linalg import contiguous_strides
from graphc.ops.registry import get_op
from graphc.types import TensorType

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
        # values kept in a buffer over some of their dims (a reduce kernel's current row):
        # value -> (pointer, those dims)
        self.partial: dict[Value, tuple[ir.Value, tuple[int, ...]]] = {}
        self.memo: dict = {}
        self.e.isolate = self.scope  # a read_if branch's values are not memoised past it

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
            self._operands_first(v, idx)
            # the entry keeps the index objects alive, so their ids cannot be reused
            self.memo[key] = (self._compute(v, idx), idx)
        return self.memo[key][0]

    def _operands_first(self, v: Value, idx: Index) -> None:
        """Evaluate the chain of elementwise operands under `v`, deepest first, with an
        explicit stack: `_compute` then finds them memoised, so a body thousands of ops deep
        needs no Python recursion that deep. (The values are the ones the recursion would
        make, at the same place in the code.)"""
        stack: list[tuple[Value, Index, bool]] = [(v, idx, False)]
        while stack:
            u, i, ready = stack.pop()
            key = (u, tuple(id(j) for j in i))
            if key in self.memo or u in self.fixed or u in self.ptr or u in self.partial:
                continue
            node = self.producer.get(u)
            if node is None or get_op(node.op).kind != "elementwise":
                continue
            if ready:
                if u is not v:
                    self.memo[key] = (self._compute(u, i), i)
                continue
            stack.append((u, i, True))
            stack.extend((x, broadcast_index(i, x.type.shape, u.type.shape), False)
                         for x in reversed(node.inputs))

    def _compute(self, v: Value, idx: Index) -> ir.Value:
        if v in self.partial:
            ptr, dims = self.partial[v]
            offset = flat_offset(self.b, tuple(idx[d] for d in dims),
                                 tuple(v.type.shape[d] for d in dims))
            return load(self.b, ptr, offset, v.type.dtype)
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
        return fit(self.b, result, v.type.dtype)  # wrapped or rounded into v's dtype

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
