"""Per-kernel profiling: cycle counters around every kernel call of the compiled step.

Input: `set_profiling(True)` before compiling (or `with profiling_on():`); the lowering then
wraps each kernel call of `graphc_main` in `llvm.readcyclecounter` reads and adds the difference
to that kernel's cell of a global counter array (`graphc_profile`). Output: for a compiled step,
`KernelProfile` rows: each kernel's name, kind, the ops fused into it, its FLOPs (the products
of its matmuls) and its counted seconds (cycles over the counter's measured rate). A profiled
step is compiled and cached apart from the plain one; the plain one has no counters.
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

from llvmlite import ir

from graphc.ir import Node

PROFILE_CELLS = "graphc_profile"
_I64 = ir.IntType(64)
_ENABLED = False


def set_profiling(on: bool) -> None:
    """Compile the steps made from now on with (or without) per-kernel cycle counters."""
    global _ENABLED
    _ENABLED = bool(on)


def profiling() -> bool:
    return _ENABLED


@contextlib.contextmanager
def profiling_on() -> Iterator[None]:
    before = profiling()
    set_profiling(True)
    try:
        yield
    finally:
        set_profiling(before)


class Counters:
    """Emits the counter array and the reads around one kernel call into the entry function."""

    def __init__(self, module: ir.Module, kernels: int):
        kind = ir.ArrayType(_I64, max(kernels, 1))
        self.cells = ir.GlobalVariable(module, kind, PROFILE_CELLS)
        self.cells.initializer = ir.Constant(kind, None)
        self.read = module.declare_intrinsic("llvm.readcyclecounter", (), ir.FunctionType(_I64, []))

    def start(self, b: ir.IRBuilder) -> ir.Value:
        return b.call(self.read, [])

    def stop(self, b: ir.IRBuilder, k: int, started: ir.Value) -> None:
        cell = b.gep(self.cells, [ir.Constant(_I64, 0), ir.Constant(_I64, k)], inbounds=True)
        b.store(b.add(b.load(cell), b.sub(b.call(self.read, []), started)), cell)


def cycles_per_second(seconds: float = 0.05) -> float:
    """The cycle counter's rate, measured against time.perf_counter (the TSC ticks at a fixed
    rate on x86, whatever the core's clock)."""
    from llvmlite import binding as llvm

    module = ir.Module("graphc_tsc")
    fn = ir.Function(module, ir.FunctionType(_I64, []), "graphc_tsc")
    b = ir.IRBuilder(fn.append_basic_block())
    b.ret(b.call(module.declare_intrinsic("llvm.readcyclecounter", (),
                                          ir.FunctionType(_I64, [])), []))
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple().create_target_machine()
    parsed = llvm.parse_assembly(str(module))
    engine = llvm.create_mcjit_compiler(parsed, target)
    engine.finalize_object()
    read = ctypes.CFUNCTYPE(ctypes.c_int64)(engine.get_function_address("graphc_tsc"))
    t0, c0 = time.perf_counter(), read()
    while time.perf_counter() - t0 < seconds:
        pass
    t1, c1 = time.perf_counter(), read()
    return (c1 - c0) / (t1 - t0)


@dataclass(frozen=True)
class KernelProfile:
    index: int        # the kernel's position in the step's calls
    name: str         # k<N>: N is its node's position in the kernel graph (as --print-after)
    kind: str         # loop, reduce or matmul
    ops: tuple[str, ...]
    flops: int        # 2 x the multiply-adds of its matmuls, per call
    seconds: float    # counted over all calls

    def gflops(self, calls: int) -> float:
        return self.flops * calls / self.seconds / 1e9 if self.seconds > 0 and self.flops else 0.0


def kernel_flops(node: Node) -> int:
    """2 x the multiply-adds of the matmuls fused into a kernel node."""
    body = node.attrs.get("body")
    total = 0
    for n in (body.nodes if body is not None else [node]):
        if n.op == "matmul":
            total += 2 * math.prod(n.outputs[0].type.shape) * n.inputs[0].type.shape[-1]
    return total


def kernel_ops(node: Node) -> tuple[str, ...]:
    body = node.attrs.get("body")
    return tuple(n.op for n in body.nodes) if body is not None else (node.op,)
