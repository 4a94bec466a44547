"""Lowering a planned graph to LLVM modules: the entry `graphc_main` and the kernels.

Input: a Graph of primitive ops and its `BufferPlan`. Output: the LLVM IR text of an entry module
and of `groups` kernel modules. The entry module holds `void graphc_main(i8* arena,
i8** params, i8** io)`, which computes every value's address from the plan, does the start
copies, calls the kernels in graph order and ends with the output and update copies, and the
error cell. Each kernel module holds about the same amount of kernel code, so that the modules
take about as long to compile; kernels whose code is identical (up to the name) are compiled
once and called from every place that needs them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from graphc.runtime.buffers import BufferPlan, Loc
from graphc.runtime.emit.emitter import ERROR_CELL, I1, I8, I64, MEM_TYPES, error_cell
from graphc.runtime.kernels.abi import emit_kernel
from graphc.runtime.parallel import call_parallel
from graphc.runtime.profile import Counters
from llvmlite import ir

from graphc.errors import CompileError, GraphcError, located
from graphc.ir import Graph, Node, Value
from graphc.ops.registry import get_op
from graphc.text.printer import format_node

ENTRY = "graphc_main"
I8P = I8.as_pointer()


@dataclass(frozen=True)
class ModuleText:
    """One module to compile: its text, its estimated compile time in ms (`cost`) and whether
    it is the entry module (straight-line calls that need no optimisation)."""

    text: str
    cost: float
    entry: bool = False


def kernel_cost(fn: ir.Function, text: str) -> float:
    """Estimated compile time of a kernel at O3, in ms: a fit over the MLP, LeNet and encoder
    kernels (median error 18%; the text's length alone is off by 72%, loops cost more)."""
    return 0.8 + 0.72 * len(text) / 1000 + 0.43 * len(fn.blocks)


def entry_cost(text: str) -> float:
    """Estimated compile time of the entry module (not optimised, fast code generator), ms."""
    return 0.25 * len(text) / 1000


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


class KernelModules:
    """Kernels emitted one after the other into a module that keeps what they share (helper
    functions, declarations), then split into `groups` kernel modules of about the same size.

    A kernel is printed once, right after it is emitted, and taken out of the module; each
    kernel module is the shared part's text followed by its kernels' (helpers a module does not
    call are dropped by LLVM). A kernel printed like an earlier one (but for the name) is
    dropped and the earlier one is called instead. Kernels are external and declared in the
    entry module; the error cell is defined there and declared in the kernel modules: one
    definition of each symbol across the modules."""

    def __init__(self, entry: ir.Module):
        self.entry = entry
        self.module = ir.Module(name=f"{entry.name}.kernels")
        ir.GlobalVariable(self.module, I64, ERROR_CELL)  # no initializer: a declaration
        self.texts: list[tuple[float, str]] = []  # (cost, text) of each kernel kept
        self.seen: dict[str, ir.Function] = {}

    def place(self, fn: ir.Function) -> ir.Function:
        """Take the kernel just emitted; returns the function the entry calls."""
        fn.linkage = ""
        text = str(fn)
        del self.module.globals[fn.name]
        key = text.replace(fn.get_reference(), "@kernel", 1)
        if key in self.seen:
            return self._forward(fn, self.seen[key])
        self.texts.append((kernel_cost(fn, text), text))
        self.seen[key] = ir.Function(self.entry, fn.function_type, fn.name)
        return self.seen[key]

    def _forward(self, fn: ir.Function, same: ir.Function) -> ir.Function:
        """`fn` in the entry module as a call of the kernel with the same code, so every call
        site (and every parallel kernel's trampoline) keeps a name of its own."""
        forward = ir.Function(self.entry, fn.function_type, fn.name)
        forward.linkage = "internal"
        b = ir.IRBuilder(forward.append_basic_block("entry"))
        b.call(same, forward.args, tail=True)
        b.ret_void()
        return forward

    def printed(self, groups: int, head_start: float = 0.0) -> list[ModuleText]:
        """At most `groups` kernel modules: the costliest kernel first, each into the module
        with the least estimated compile time so far. The first module starts at
        `head_start`: the thread that compiles it also compiles the entry module."""
        bins: list[list[str]] = [[] for _ in range(max(1, groups))]
        costs = [head_start] + [0.0] * (len(bins) - 1)
        for cost, text in sorted(self.texts, key=lambda kept: -kept[0]):
            k = costs.index(min(costs))
            bins[k].append(text)
            costs[k] += cost
        costs[0] -= head_start
        shared = str(self.module)
        return [ModuleText("\n".join([shared, *texts]), cost)
                for texts, cost in zip(bins, costs) if texts]


def _shared(node: Node, plan: BufferPlan) -> dict[int, int]:
    """Inputs whose buffer an output is written over (in-place updates): position -> output."""
    outputs = {plan.loc[v]: k for k, v in enumerate(node.outputs)}
    return {j: outputs[plan.loc[v]] for j, v in enumerate(node.inputs)
            if plan.loc.get(v) in outputs}


def _emit(modules: KernelModules, index: int, node: Node, plan: BufferPlan,
          shared: dict[int, int]) -> ir.Function:
    """The kernel of `node`, placed; a failure names the node."""
    aliased = any(v in plan.inplace for v in node.outputs)
    try:
        fn = emit_kernel(modules.module, node, _kernel_name(index, node.op), aliased,
                         plan.consts, plan.parts.get(index, 1), index + 1, shared)
    except GraphcError as err:
        raise CompileError(located(f"lowering {node.op}: {err}", node.loc,
                                   format_node(node))) from None
    except Exception as err:  # an emitter bug must still name the node
        raise CompileError(located(f"lowering {node.op} failed: {type(err).__name__}: "
                                   f"{err}", node.loc, format_node(node))) from err
    return modules.place(fn)


def kernel_nodes(graph: Graph) -> list[tuple[int, Node]]:
    """The nodes that become kernels with their positions, in the order the entry function
    calls them."""
    return [(i, n) for i, n in enumerate(graph.nodes) if get_op(n.op).kind != "source"]


def build_modules(graph: Graph, plan: BufferPlan, groups: int = 1,
                  profile: bool = False) -> tuple[list[ModuleText], int]:
    """The entry module and at most `groups` kernel modules, as text (target-independent: the
    JIT sets the triple and data layout); and the number of kernels. With `profile`, every
    kernel call is timed by the cycle counter into `graphc_profile` (runtime/profile.py)."""
    module = ir.Module(name=graph.name)
    modules = KernelModules(module)
    entry = EntryBuilder(module, plan)
    error_cell(module)  # always present, so the executor can read it
    counters = Counters(module, len(kernel_nodes(graph))) if profile else None
    for src, dst, nbytes in plan.start_copies:
        entry.copy(src, dst, nbytes)
    kernels = 0
    for index, node in enumerate(graph.nodes):
        if get_op(node.op).kind == "source":
            continue
        shared = _shared(node, plan)
        fn = _emit(modules, index, node, plan, shared)
        inputs = [v for j, v in enumerate(node.inputs) if j not in shared]
        args = [entry.typed(v) for v in (*node.outputs, *inputs)]
        if index in plan.scratch:  # the kernel's scratch memory, placed by the planner
            args.append(entry.address(Loc("arena", plan.scratch[index])))
        parts = plan.parts.get(index, 1)
        started = counters.start(entry.b) if counters is not None else None
        if parts > 1:
            call_parallel(entry.b, fn, args, parts)
        else:
            entry.b.call(fn, args)
        if counters is not None:
            counters.stop(entry.b, kernels, started)
        kernels += 1
    for src, dst, nbytes in plan.end_copies:
        entry.copy(src, dst, nbytes)
    entry.b.ret_void()
    text = str(module)
    entry_module = ModuleText(text, entry_cost(text), entry=True)
    return [entry_module, *modules.printed(groups, entry_module.cost)], kernels
