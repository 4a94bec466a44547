"""The kernel ABI: one LLVM function per kernel node.

Input: a `fused` node (passes/fusion.py) and the compile-time values of source-produced
operands. Output: an LLVM function `void kernel(out0*, ..., in0*, ..., [i8* scratch])` (element
pointers, row-major, static shapes; an input whose buffer an output is written over is read
through that output's pointer and has no argument of its own) whose body runtime/kernels/loop.py
emits. Kernels read no other state, so the entry function can call them in schedule order.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from graphc.runtime.emit.emitter import I8, I64, MEM_TYPES, LLVMEmitter
from graphc.runtime.kernels.loop import emit_fused, scratch_bytes
from llvmlite import ir

from graphc.ir import Node, Value
from graphc.ops.registry import OpDef, get_op

LOWERED_KINDS = ("fused",)


class Kernel:
    """The function being emitted for one node, with its typed buffer arguments."""

    def __init__(self, module: ir.Module, node: Node, name: str, aliased: bool, parts: int = 1,
                 error_code: int = 1, shared: Mapping[int, int] | None = None):
        """`shared` maps the position of an input to the output written over its buffer (an
        in-place update): that input is read through the output's pointer, which tells LLVM
        they are the same memory, and every output is noalias. Without it, `aliased` says that
        some output may be an input's buffer."""
        self.node = node
        self.op: OpDef = get_op(node.op)
        self.parts = parts
        shared = shared or {}
        self.aliased = aliased or bool(shared)  # may an output be an input's buffer?
        values = list(node.outputs) + [v for j, v in enumerate(node.inputs) if j not in shared]
        arg_types = [MEM_TYPES[v.type.dtype].as_pointer() for v in values]
        self.scratch_bytes = scratch_bytes(node, parts) if self.op.kind == "fused" else 0
        if self.scratch_bytes:
            arg_types.append(I8.as_pointer())
        if parts > 1:
            arg_types.append(I64)  # which part of the work this call does
        self.fn = ir.Function(module, ir.FunctionType(ir.VoidType(), arg_types), name)
        self.fn.linkage = "internal"
        self.fn.attributes.add("nounwind")
        # Inlined into the entry function, every kernel went through the function pipeline
        # twice and the loop vectoriser scanned one huge function: 2x the compile time. The
        # one useful fact inlining gave LLVM, that an in-place input and output are the same
        # memory, `shared` states; a call per kernel is nothing next to its loops.
        self.fn.attributes.add("noinline")
        distinct = shared or not aliased  # outputs are fresh buffers or read through themselves
        for k, arg in enumerate(self.fn.args[:len(values)]):
            arg.add_attribute("nocapture")
            if k < len(node.outputs) and distinct:
                arg.add_attribute("noalias")
        self.outs = self.fn.args[:len(node.outputs)]
        rest = iter(self.fn.args[len(node.outputs):len(values)])
        self.ins = [self.outs[shared[j]] if j in shared else next(rest)
                    for j in range(len(node.inputs))]
        self.scratch = self.fn.args[len(values)] if self.scratch_bytes else None
        self.part = self.fn.args[-1] if parts > 1 else None
        if self.scratch is not None:
            self.scratch.add_attribute("noalias")
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self.e = LLVMEmitter(self.b, error_code)

    def finish(self) -> ir.Function:
        self.e.record_failure()
        self.b.ret_void()
        return self.fn


EMITTERS: dict[str, Callable[[Kernel, Mapping[Value, np.ndarray]], None]] = {
    "fused": emit_fused,
}


def emit_kernel(module: ir.Module, node: Node, name: str, aliased: bool,
                consts: Mapping[Value, np.ndarray], parts: int = 1, error_code: int = 1,
                shared: Mapping[int, int] | None = None) -> ir.Function:
    """Emit the kernel for `node` into `module` and return its function (see `Kernel`)."""
    kernel = Kernel(module, node, name, aliased, parts, error_code, shared)
    EMITTERS[kernel.op.kind](kernel, consts)
    return kernel.finish()
