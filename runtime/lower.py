"""Lowering a planned graph to one LLVM module with the entry `graphc_main`.

Input: a Graph of primitive ops and its `BufferPlan`. Output: an llvmlite `ir.Module` holding one
internal kernel function per non-source node and `void graphc_main(i8* arena, i8** params,
i8** io)`, which computes every value's address from the plan, does the start copies, calls the
kernels in graph order and ends with the output and update copies.
"""
from __future__ import annotations

import re

from llvmlite import ir

from graphc.errors import CompileError, GraphcError, located
from graphc.ir import Graph, Value
from graphc.ops.registry import get_op
from graphc.printer import format_node

from .kernels import emit_kernel
from .llvm_emitter import I1, I8, I64, MEM_TYPES, error_cell
from .parallel import call_parallel
from .plan import BufferPlan, Loc

ENTRY = "graphc_main"
I8P = I8.as_pointer()


class EntryBuilder:
    """Emits `graphc_main` and turns plan locations into pointers inside it."""

    def __init__(self, module: ir.Module, plan: BufferPlan):
        self.plan = plan
        self.module = module
        fnty = ir.FunctionType(ir.VoidType(), [I8P, I8P.as_pointer(), I8P.as_pointer()])
        self.fn = ir.Function(module, fnty, ENTRY)
        self.fn.attributes.add("nounwind")
        arena, params, io = self.fn.args
        arena.name, params.name, io.name = "arena", "params", "io"
        arena.add_attribute("noalias")
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self._slots: dict[tuple[str, int], ir.Value] = {}
        self._memcpy = module.declare_intrinsic("llvm.memcpy", [I8P, I8P, I64])

    def _slot(self, space: str, index: int) -> ir.Value:
        """The pointer held in params[index] or io[index], loaded once."""
        key = (space, index)
        if key not in self._slots:
            table = self.fn.args[1] if space == "param" else self.fn.args[2]
            ptr = self.b.gep(table, [ir.Constant(I64, index)], inbounds=True)
            self._slots[key] = self.b.load(ptr, name=f"{space}{index}")
        return self._slots[key]

    def address(self, loc: Loc) -> ir.Value:
        """An i8* for a location."""
        if loc.space == "arena":
            return self.b.gep(self.fn.args[0], [ir.Constant(I64, loc.at)], inbounds=True)
        if loc.space == "const":
            base = self._slot("param", self.plan.const_slot)
            return self.b.gep(base, [ir.Constant(I64, loc.at)], inbounds=True)
        return self._slot(loc.space, loc.at)

    def typed(self, value: Value) -> ir.Value:
        ptr = self.address(self.plan.loc[value])
        return self.b.bitcast(ptr, MEM_TYPES[value.type.dtype].as_pointer())

    def copy(self, src: Loc, dst: Loc, nbytes: int) -> None:
        if nbytes:
            self.b.call(self._memcpy, [self.address(dst), self.address(src),
                                       ir.Constant(I64, nbytes), ir.Constant(I1, 0)])


def _kernel_name(index: int, op: str) -> str:
    return f"k{index}_{re.sub(r'[^A-Za-z0-9_]', '_', op)}"


def build_module(graph: Graph, plan: BufferPlan, triple: str = "",
                 data_layout: str = "") -> tuple[ir.Module, int]:
    """The whole graph as one module; returns it and the number of kernels."""
    module = ir.Module(name=graph.name)
    module.triple, module.data_layout = triple, data_layout
    entry = EntryBuilder(module, plan)
    error_cell(module)  # always present, so the executor can read it
    for src, dst, nbytes in plan.start_copies:
        entry.copy(src, dst, nbytes)
    kernels = 0
    for index, node in enumerate(graph.nodes):
        if get_op(node.op).kind == "source":
            continue
        aliased = any(v in plan.inplace for v in node.outputs)
        try:
            fn = emit_kernel(module, node, _kernel_name(index, node.op), aliased, plan.consts,
                             plan.parts.get(index, 1), error_code=index + 1)
        except GraphcError as err:
            raise CompileError(located(f"lowering {node.op}: {err}", node.loc,
                                       format_node(node))) from None
        except Exception as err:  # an emitter bug must still name the node
            raise CompileError(located(f"lowering {node.op} failed: {type(err).__name__}: "
                                       f"{err}", node.loc, format_node(node))) from err
        args = [entry.typed(v) for v in node.outputs + node.inputs]
        if index in plan.scratch:  # the kernel's scratch memory, placed by the planner
            args.append(entry.address(Loc("arena", plan.scratch[index])))
        parts = plan.parts.get(index, 1)
        if parts > 1:
            call_parallel(entry.b, fn, args, parts)
        else:
            entry.b.call(fn, args)
        kernels += 1
    for src, dst, nbytes in plan.end_copies:
        entry.copy(src, dst, nbytes)
    entry.b.ret_void()
    return module, kernels
