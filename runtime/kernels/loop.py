"""Lowering of fused kernels: a body graph evaluated at loop indices, one loop nest per kernel.

Input: a `fused` node (see passes/fusion.py) inside a `Kernel` whose arguments are the node's
outputs then its operands. Output: the kernel's instructions. Every body value is evaluated on
demand at a multi-index (`IndexEval.at`, runtime/emit/index_eval.py); reduction/matmul results are
the accumulator of the current row or element. A loop kernel is one loop nest, a reduce kernel
runs its reductions row by row or over the whole domain (runtime/kernels/reduce.py), a matmul
kernel is the packed GEMM of runtime/kernels/gemm.py with the epilogue on each finished block of C.
All outputs of an iteration are computed before any is stored, so a kernel may write an update
into the buffer it reads (in place) at the same index.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from graphc.passes.fusion import keeps_flat_order
from graphc.runtime.emit.emitter import I64, store
from graphc.runtime.emit.index_eval import (
    ZERO,
    Index,
    IndexEval,
    Scratch,
    broadcast_index,
    flat_offset,
    loop_nest,
)
from graphc.runtime.kernels.gemm import Gemm, gemm_buffers, gemm_scratch
from graphc.runtime.kernels.reduce import emit_reduce
from graphc.runtime.kernels.reduce_layout import reduce_scratch_bytes
from graphc.runtime.kernels.scatter import emit_scatter_rows, one_hot_rows
from llvmlite import ir

from graphc.errors import CompileError
from graphc.ir import Node, Value
from graphc.ops.linalg import contiguous_strides
from graphc.ops.registry import get_op


def _outputs(kernel) -> list[tuple[int, Value]]:
    """(argument position, body value) of each kernel result."""
    return list(enumerate(kernel.node.attrs["body"].outputs.values()))


# --- kernel kinds ------------------------------------------------------------------------------
def emit_loop(kernel, ev: IndexEval) -> None:
    """One loop nest over the common output shape, or over the finer shape the outputs are
    reshaped from (a reshape keeps the flat order, so the store offset is the same, and the
    loops then follow the source's axes: im2col's rows of an image instead of one flat
    axis taken apart with divisions)."""
    outputs = _outputs(kernel)
    shapes = {v.type.shape for _, v in outputs}
    if len(shapes) > 1:  # a fusion bug must not become a silent wrong answer
        raise CompileError(f"loop kernel with outputs of different shapes {sorted(shapes)}")
    shape = kernel.node.outputs[0].type.shape
    if _flat(ev, shape):  # one counted loop over every element, as one dense axis
        size = int(np.prod(shape))
        with loop_nest(kernel.b, (size,), "f") as (f,), ev.scope():
            ev.store_all([(j, v, (ZERO,) * (len(shape) - 1) + (f,)) for j, v in outputs])
        return
    sources = _reshaped_from(ev, [v for _, v in outputs])
    if sources is None:
        with loop_nest(kernel.b, kernel.node.outputs[0].type.shape, "i") as idx, ev.scope():
            ev.store_all([(j, v, idx) for j, v in outputs])
        return
    b, shape = kernel.b, sources[0].type.shape
    with loop_nest(b, shape, "i") as idx, ev.scope():
        values = [ev.at(u, idx) for u in sources]  # every value before any store (in place)
        offset = flat_offset(b, idx, shape)
        for (j, v), value in zip(outputs, values):
            store(b, value, kernel.outs[j], offset, v.type.dtype)


def _flat(ev: IndexEval, shape: tuple[int, ...]) -> bool:
    """May the loop nest over `shape` be one loop over its elements in memory order?

    Yes when every value is read where it is stored, at the element's flat offset: the body
    is elementwise ops whose operands have the output's shape or one element, uniform
    constants, and reshapes (in flat order) of the kernel's operands; and the last axis is
    not 1. The index (0, ..., 0, f) then addresses element f of every one of them (each
    offset is the dot product of the index with contiguous strides), so the loop needs no
    divisions and vectorises: an optimizer update of a conv weight [512,512,3,3] otherwise
    runs an inner loop of 3 (10 ms where 2 would do)."""
    if len(shape) < 2 or shape[-1] == 1 or sum(n > 1 for n in shape) < 2:
        return False
    for node in ev.body.nodes:
        kind = get_op(node.op).kind
        if kind == "source":
            continue
        out = node.outputs[0].type
        if kind == "elementwise":
            if any(x.type.shape != out.shape and x.type.size != 1 for x in node.inputs):
                return False
        elif kind == "movement" and get_op(node.op).index_map is None:
            x = node.inputs[0]
            if not keeps_flat_order(node) or x not in ev.ptr or x in ev.consts or \
                    out.shape != shape:
                return False
        else:
            return False
        if out.shape != shape and out.size != 1:
            return False
    return True


def _reshaped_from(ev: IndexEval, outputs: list[Value]) -> list[Value] | None:
    """The values the outputs are reshapes of, when all are, from one shape with more axes."""
    nodes = [ev.producer.get(v) for v in outputs]
    if any(n is None or get_op(n.op).kind != "movement" or not keeps_flat_order(n)
           for n in nodes):
        return None
    sources = [n.inputs[0] for n in nodes]
    shape = sources[0].type.shape
    finer = sum(n > 1 for n in shape) > sum(n > 1 for n in outputs[0].type.shape)
    return sources if finer and all(u.type.shape == shape for u in sources) else None


def scratch_bytes(node: Node, parts: int = 1) -> int:
    """Scratch memory a fused kernel needs: accumulators and row buffers for a reduce kernel
    (runtime/kernels/reduce.py); a packed block of B and a block of C for a matmul."""
    body, kind = node.attrs["body"], node.attrs["kind"]
    if kind == "reduce":
        return reduce_scratch_bytes(body)
    if kind == "matmul":
        (mm,) = [n for n in body.nodes if n.op == "matmul"]
        *_, m, n = mm.output.type.shape
        per_part = gemm_scratch(m, n, mm.inputs[0].type.shape[-1], mm.output.type.dtype, parts)
        return per_part * parts
    return 0


def emit_matmul(kernel, ev: IndexEval) -> None:
    """C = A @ B per batch element with the packed GEMM of runtime/kernels/gemm.py, or as a
    scatter-add when A is one-hot (runtime/kernels/scatter.py); the epilogue (every kernel output) is
    evaluated on each finished block of C."""
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
    hot = one_hot_rows(ev, a)
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

        if hot is not None:
            emit_scatter_rows(kernel, ev, hot, a, a_batch, n, read(bm, b_batch), epilogue,
                              cblock, cblock_count)
        else:
            Gemm(b, dtype, m, n, kk, read(a, a_batch), read(bm, b_batch), epilogue, packed,
                 cblock, affine(ev, a, a_batch), affine(ev, bm, b_batch)).emit(kernel.part,
                                                                               parts)


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
    may read it: the reductions of a row (of all rows, in the whole-domain scheme) finish
    before that row's first store, and read the target only at its own indices."""
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
