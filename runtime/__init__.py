"""runtime: from a graph of primitive ops to machine code and back to NumPy.

Input: a `graphc.ir.Graph` of `fused` kernels (passes/fusion.py) and source nodes; any other
primitive node (elementwise, reduction, matmul, movement) is first wrapped into a kernel of its
own (`as_kernels`). Output: `compile_graph(graph) -> NativeExecutable`, the pipeline's last
three stages at once (stages.py: `plan_memory`, `lower_to_llvm`, `jit_compile`), whose
`run(feeds)` is one native call into the JIT-compiled entry function, which calls the kernels;
the LLVM modules compile on every core this process may use (or come from the disk cache).
"""
from __future__ import annotations

from graphc.runtime.executor import NativeExecutable
from graphc.runtime.parallel import num_threads, set_num_threads
from graphc.runtime.stages import jit_compile, lower_to_llvm, plan_memory
from graphc.runtime.target import host_target_machine

from graphc.ir import Graph

__all__ = ["NativeExecutable", "compile_graph", "initialize", "num_threads", "set_num_threads"]


def initialize() -> None:
    """Load and initialise LLVM for this CPU now (the first compile does it otherwise), so a
    compile timed afterwards is the compile alone (`graphc bench`'s cold compile)."""
    host_target_machine()


def compile_graph(graph: Graph) -> NativeExecutable:
    """Plan buffers, lower every node to a kernel, JIT the module, wrap it for NumPy."""
    return jit_compile(lower_to_llvm(plan_memory(graph)))
