"""runtime: from a graph of primitive ops to machine code and back to NumPy.

Input: a `graphc.ir.Graph` of `fused` kernels (passes/fusion.py) and source nodes; any other
primitive node (elementwise, reduction, matmul, movement) is first wrapped into a kernel of its
own (`as_kernels`). Output: `compile_graph(graph) -> Executable`, whose `run(feeds)` is one
native call into the JIT-compiled entry function, which calls the kernels; the LLVM modules
compile on every core this process may use (or come from the disk cache).
"""
from __future__ import annotations

import time

from graphc.passes.fusion import as_kernels
from graphc.runtime.buffers import plan_buffers
from graphc.runtime.cache import cache_key
from graphc.runtime.executor import Executable
from graphc.runtime.jit import JitModule, compile_workers, host_target_machine
from graphc.runtime.lower import ENTRY, build_modules
from graphc.runtime.parallel import num_threads, set_num_threads

from graphc.ir import Graph

__all__ = ["Executable", "compile_graph", "initialize", "num_threads", "set_num_threads"]


def initialize() -> None:
    """Load and initialise LLVM for this CPU now (the first compile does it otherwise), so a
    compile timed afterwards is the compile alone (`graphc bench`'s cold compile)."""
    host_target_machine()


def compile_graph(graph: Graph) -> Executable:
    """Plan buffers, lower every node to a kernel, JIT the module, wrap it for NumPy."""
    t0 = time.perf_counter()
    graph = as_kernels(graph)
    threads = num_threads()
    plan = plan_buffers(graph, threads)
    kernels = sum(1 for n in graph.nodes if n.op == "fused")
    # the machine code bakes in the plan's offsets and slots, so the plan is part of the key
    text = f"// threads={threads}\n// {plan.describe()}\n{graph.to_text()}"
    lowered = time.perf_counter() - t0
    workers = compile_workers()
    jit = JitModule(lambda: build_modules(graph, plan, workers)[0], ENTRY, cache_key(text),
                    workers)
    stats = {"kernels": kernels, **plan.stats, "cached": jit.cached, "threads": threads,
             "parallel_kernels": len(plan.parts),
             "arena_bytes": plan.arena_bytes, "const_bytes": int(plan.const_buffer.nbytes),
             "inplace_updates": len(plan.inplace),
             "lower_seconds": lowered + jit.parse_seconds,
             "optimize_seconds": jit.optimize_seconds, "jit_seconds": jit.jit_seconds,
             "llvm_modules": jit.modules}
    return Executable(graph, plan, jit, stats)
