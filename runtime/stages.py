"""The runtime's stages of the pipeline: memory plan, lowering and JIT, one artefact each.

Input: a scheduled Graph (the last graph pass's result, passes/schedule.py). Output, stage by
stage: `plan_memory` -> `PlannedGraph` (the kernel graph and its BufferPlan); `lower_to_llvm`
-> `LoweredModules` (the LLVM entry and kernel modules and their cache key); `jit_compile` ->
`NativeExecutable` (machine code wrapped for NumPy, with the compile statistics, among them
`half_in_f32_kernels`: the kernels computing f16/bf16 in f32). The two
artefacts before the machine code print as text (`to_text`), so `--print-after` shows them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from graphc.passes.fusion import as_kernels
from graphc.runtime.buffers import BufferPlan, plan_buffers
from graphc.runtime.cache import cache_key
from graphc.runtime.executor import NativeExecutable
from graphc.runtime.jit import JitModule, compile_workers
from graphc.runtime.lower import ENTRY, ModuleText, build_modules
from graphc.runtime.parallel import num_threads
from graphc.runtime.plan_text import format_plan
from graphc.runtime.profile import profiling

from graphc.ir import Graph
from graphc.types import HALF_DTYPES


@dataclass(frozen=True)
class PlannedGraph:
    """A graph whose every primitive node is a kernel, with where each value lives."""

    graph: Graph
    plan: BufferPlan
    threads: int    # the machine code bakes in the plan's kernel splits for this many threads
    seconds: float  # spent planning (counted in the `lower_seconds` statistic)
    profile: bool = False  # kernel calls timed by cycle counters (runtime/profile.py)

    def to_text(self) -> str:
        return format_plan(self.graph, self.plan, self.threads)


@dataclass(frozen=True)
class LoweredModules:
    """The lowered step: its cache key, and its LLVM modules' text made on demand (`build`).

    The text is only made when the disk cache misses or when it is printed: a cached compile
    skips emitting the kernels altogether."""

    planned: PlannedGraph
    cache_key: str
    workers: int    # kernel modules to split the kernels into (the threads that compile)
    seconds: float  # spent planning and lowering before the JIT

    @property
    def graph(self) -> Graph:
        return self.planned.graph

    def build(self) -> list[ModuleText]:
        """The entry module, then the kernel modules (made again on every call)."""
        return build_modules(self.planned.graph, self.planned.plan, self.workers,
                             self.planned.profile)[0]

    def to_text(self) -> str:
        return "".join(m.text if m.text.endswith("\n") else m.text + "\n" for m in self.build())


def plan_memory(graph: Graph) -> PlannedGraph:
    """Needs a scheduled graph; wraps any primitive node left outside a kernel into one and
    places every value (arena offsets reused over the schedule, in-place updates, slots)."""
    start = time.perf_counter()
    kernels = as_kernels(graph)
    threads = num_threads()
    plan = plan_buffers(kernels, threads)
    return PlannedGraph(kernels, plan, threads, time.perf_counter() - start, profiling())


def lower_to_llvm(planned: PlannedGraph) -> LoweredModules:
    """Needs a planned graph; gives the LLVM modules (entry `graphc_main` calling the kernels
    in schedule order) and the key they are cached under."""
    start = time.perf_counter()
    # the machine code bakes in the plan's offsets and slots, so the plan is part of the key
    text = (f"// threads={planned.threads}{' profiled' if planned.profile else ''}\n"
            f"// {planned.plan.describe()}\n{planned.graph.to_text()}")
    seconds = planned.seconds + time.perf_counter() - start
    return LoweredModules(planned, cache_key(text), compile_workers(), seconds)


def half_in_f32_kernels(graph: Graph) -> int:
    """Kernels that compute f16/bf16 values in f32 registers (rounded on every result)."""
    def halves(body: Graph) -> bool:
        values = [i.value for i in body.inputs] + [v for n in body.nodes for v in n.outputs]
        return any(v.type.dtype in HALF_DTYPES for v in values)
    return sum(1 for n in graph.nodes if n.op == "fused" and halves(n.attrs["body"]))


def jit_compile(lowered: LoweredModules) -> NativeExecutable:
    """Needs lowered modules; loads their machine code from the disk cache or compiles it on
    every worker, and wraps it for NumPy with the compile statistics."""
    graph, plan = lowered.planned.graph, lowered.planned.plan
    machine = JitModule(lowered.build, ENTRY, lowered.cache_key, lowered.workers)
    stats = {"kernels": sum(1 for n in graph.nodes if n.op == "fused"), **plan.stats,
             "cached": machine.cached, "threads": lowered.planned.threads,
             "parallel_kernels": len(plan.parts),
             "arena_bytes": plan.arena_bytes, "const_bytes": int(plan.const_buffer.nbytes),
             "inplace_updates": len(plan.inplace),
             "half_in_f32_kernels": half_in_f32_kernels(graph),
             "lower_seconds": lowered.seconds + machine.parse_seconds,
             "optimize_seconds": machine.optimize_seconds, "jit_seconds": machine.jit_seconds,
             "llvm_modules": machine.modules, "profiled": lowered.planned.profile}
    return NativeExecutable(graph, plan, machine, stats, lowered.planned.profile)
