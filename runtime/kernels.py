"""Kernel emitters: one LLVM function per graph node, chosen by the op's kind.

Input: a node whose op is elementwise, reduction, matmul or movement, the facts of its OpDef,
and the compile-time values of source-produced operands. Output: an internal LLVM function with
the one kernel ABI `void kernel(out0*, ..., in0*, ...)` (element pointers, row-major, static
shapes). Kernels read no other state, so the entry function can call them in schedule order.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
from llvmlite import ir

from graphc.errors import CompileError
from graphc.ir import Node, Value
from graphc.ops.registry import OpDef, get_op

from .fused import emit_fused, scratch_bytes
from .llvm_emitter import (
    I8,
    MEM_TYPES,
    LLVMEmitter,
    broadcast_strides,
    constant,
    for_range,
    load,
    store,
    strided_nest,
)

LOWERED_KINDS = ("elementwise", "reduction", "matmul", "movement", "fused")


def row_major_strides(shape) -> tuple[int, ...]:
    """Element strides of a dense row-major array."""
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


class Kernel:
    """The function being emitted for one node, with its typed buffer arguments."""

    def __init__(self, module: ir.Module, node: Node, name: str, aliased: bool):
        self.node = node
        self.op: OpDef = get_op(node.op)
        values = list(node.outputs) + list(node.inputs)
        arg_types = [MEM_TYPES[v.type.dtype].as_pointer() for v in values]
        self.scratch_bytes = scratch_bytes(node) if self.op.kind == "fused" else 0
        if self.scratch_bytes:
            arg_types.append(I8.as_pointer())
        self.fn = ir.Function(module, ir.FunctionType(ir.VoidType(), arg_types), name)
        self.fn.linkage = "internal"
        self.fn.attributes.add("nounwind")
        for k, arg in enumerate(self.fn.args[:len(values)]):
            arg.add_attribute("nocapture")
            if k < len(node.outputs) and not aliased:
                arg.add_attribute("noalias")  # outputs are fresh buffers unless written in place
        self.outs = self.fn.args[:len(node.outputs)]
        self.ins = self.fn.args[len(node.outputs):len(values)]
        self.scratch = self.fn.args[len(values)] if self.scratch_bytes else None
        if self.scratch is not None:
            self.scratch.add_attribute("noalias")
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self.e = LLVMEmitter(self.b)

    def finish(self) -> ir.Function:
        self.b.ret_void()
        return self.fn


# --- elementwise -----------------------------------------------------------------------------
def emit_elementwise(k: Kernel, consts: Mapping[Value, np.ndarray]) -> None:
    """Loop over the output; inputs are read with broadcast strides; body = op.scalar."""
    out = k.node.output
    shape = out.type.shape
    live = [j for j, v in enumerate(k.node.inputs) if not _is_scalar_const(v, consts)]
    strides = [row_major_strides(shape)] + [
        broadcast_strides(k.node.inputs[j].type.shape, shape) for j in live]
    with strided_nest(k.b, shape, strides) as (o, *offsets):
        index_of = dict(zip(live, offsets))
        args = []
        for j, v in enumerate(k.node.inputs):
            if j in index_of:
                args.append(load(k.b, k.ins[j], index_of[j], v.type.dtype))
            else:
                args.append(constant(v.type.dtype, consts[v].reshape(-1)[0].item()))
        result = k.op.scalar(k.e, *args, **k.node.attrs)
        store(k.b, _as_dtype(k, result, out), k.outs[0], o, out.type.dtype)


def _is_scalar_const(v: Value, consts: Mapping[Value, np.ndarray]) -> bool:
    return v in consts and v.type.size == 1


def _as_dtype(k: Kernel, result, out: Value):
    """Scalar bodies may return a constant of a Python type or an identity; coerce to out."""
    if not isinstance(result, ir.Value):
        return constant(out.type.dtype, result)
    expected = MEM_TYPES[out.type.dtype] if out.type.dtype != "bool" else ir.IntType(1)
    if result.type != expected:
        raise CompileError(f"scalar body of {k.node.op!r} returned {result.type}, "
                           f"expected {out.type.dtype}")
    return result


# --- reductions ------------------------------------------------------------------------------
def emit_reduction(k: Kernel, consts: Mapping[Value, np.ndarray]) -> None:
    """out = identity; out[kept] = combine(out[kept], x[all]) in input order; finalize(out)."""
    (x,), out = k.node.inputs, k.node.output
    axes, dtype = tuple(k.node.attrs["axes"]), out.type.dtype
    combine, identity = k.op.reducer
    with for_range(k.b, out.type.size, "o") as o:
        store(k.b, constant(dtype, identity), k.outs[0], o, dtype)
    kept = [d for d in range(x.type.rank) if d not in axes]
    kept_strides = dict(zip(kept, row_major_strides(tuple(x.type.shape[d] for d in kept))))
    out_strides = tuple(kept_strides.get(d, 0) for d in range(x.type.rank))
    with strided_nest(k.b, x.type.shape, [out_strides, row_major_strides(x.type.shape)]) as (o, i):
        acc = load(k.b, k.outs[0], o, dtype)
        value = load(k.b, k.ins[0], i, dtype)
        store(k.b, getattr(k.e, combine)(acc, value), k.outs[0], o, dtype)
    if k.op.finalize is not None:
        count = math.prod(x.type.shape[a] for a in axes)
        with for_range(k.b, out.type.size, "f") as o:
            acc = load(k.b, k.outs[0], o, dtype)
            store(k.b, k.op.finalize(k.e, acc, count), k.outs[0], o, dtype)


# --- matmul ----------------------------------------------------------------------------------
def emit_matmul(k: Kernel, consts: Mapping[Value, np.ndarray]) -> None:
    """Batched C = A @ B, loop order (batch, i, k, j) so the j loop is contiguous in B and C.

    A placeholder for the packed GEMM of a later issue; replace this function only.
    """
    (a, bm), c = k.node.inputs, k.node.output
    *batch, m, n = c.type.shape
    kk = a.type.shape[-1]
    a_batch = broadcast_strides(a.type.shape[:-2], batch)
    b_batch = broadcast_strides(bm.type.shape[:-2], batch)
    c_batch = row_major_strides(tuple(batch))
    strides = [tuple(s * m * n for s in c_batch), tuple(s * m * kk for s in a_batch),
               tuple(s * kk * n for s in b_batch)]
    b, e, dtype = k.b, k.e, c.type.dtype
    zero = constant(dtype, 0)
    with strided_nest(b, tuple(batch), strides) as (c0, a0, b0), for_range(b, m, "i") as i:
        c_row = b.add(c0, b.mul(i, constant("i64", n)))
        a_row = b.add(a0, b.mul(i, constant("i64", kk)))
        with for_range(b, n, "z") as j:
            store(b, zero, k.outs[0], b.add(c_row, j), dtype)
        with for_range(b, kk, "k") as p:
            a_ip = load(b, k.ins[0], b.add(a_row, p), dtype)
            b_row = b.add(b0, b.mul(p, constant("i64", n)))
            with for_range(b, n, "j") as j:
                c_ij = b.add(c_row, j)
                acc = load(b, k.outs[0], c_ij, dtype)
                prod = e.mul(a_ip, load(b, k.ins[1], b.add(b_row, j), dtype))
                store(b, e.add(acc, prod), k.outs[0], c_ij, dtype)


# --- movement --------------------------------------------------------------------------------
def emit_movement(k: Kernel, consts: Mapping[Value, np.ndarray]) -> None:
    """A strided copy: out[idx] = in[sum(idx * view_strides)]."""
    (x,), out = k.node.inputs, k.node.output
    view = tuple(k.op.view(x.type, out.type, **k.node.attrs))
    if len(view) != out.type.rank:
        raise CompileError(f"view of {k.node.op!r} gave {len(view)} strides for rank "
                           f"{out.type.rank}")
    dtype = out.type.dtype
    with strided_nest(k.b, out.type.shape, [row_major_strides(out.type.shape), view]) as (o, i):
        store(k.b, load(k.b, k.ins[0], i, dtype), k.outs[0], o, dtype)


EMITTERS: dict[str, Callable[[Kernel, Mapping[Value, np.ndarray]], None]] = {
    "elementwise": emit_elementwise,
    "reduction": emit_reduction,
    "matmul": emit_matmul,
    "movement": emit_movement,
    "fused": emit_fused,
}


def emit_kernel(module: ir.Module, node: Node, name: str, aliased: bool,
                consts: Mapping[Value, np.ndarray]) -> ir.Function:
    """Emit the kernel for `node` into `module` and return its function."""
    kernel = Kernel(module, node, name, aliased)
    EMITTERS[kernel.op.kind](kernel, consts)
    return kernel.finish()
