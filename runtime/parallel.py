"""Multi-core execution: how many threads, which kernels split, and the fork/join that runs a
kernel's parts on several cores from inside the compiled step.

Input: the thread count (the API's `set_num_threads`, else `GRAPHC_NUM_THREADS`, else the
machine's cores) and a kernel node. Output: the number of parts the kernel is split into (only
matmul kernels large enough to amortise a thread start, and only as many parts as they have
column blocks), and, in the entry function, a fork/join: parts 1.. run on new threads (pthread),
part 0 on the calling thread, then all are joined. A part that cannot get a thread runs inline.
"""
from __future__ import annotations

import os

from graphc.runtime.emit.emitter import I8, I64
from graphc.runtime.kernels.gemm import tiles
from llvmlite import ir

from graphc.errors import GraphcError
from graphc.ir import Node

PARALLEL_MIN_FLOPS = 8_000_000  # below this a thread start (~20 µs) costs more than it saves
_THREADS: int | None = None


def set_num_threads(n: int | None) -> None:
    """Threads compiled steps may use (None: back to GRAPHC_NUM_THREADS / all cores).
    Takes effect for graphs compiled afterwards."""
    global _THREADS
    if n is not None and (not isinstance(n, int) or n < 1):
        raise GraphcError(f"set_num_threads: expected a positive int, got {n!r}")
    _THREADS = n


def num_threads() -> int:
    if _THREADS is not None:
        return _THREADS
    env = os.environ.get("GRAPHC_NUM_THREADS")
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise GraphcError(f"GRAPHC_NUM_THREADS must be a positive integer, got {env!r}")
        return value
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def kernel_parts(node: Node, threads: int) -> int:
    """How many parts a kernel is split into."""
    if threads <= 1 or node.attrs.get("kind") != "matmul":
        return 1
    (mm,) = [n for n in node.attrs["body"].nodes if n.op == "matmul"]
    *batch, m, n = mm.output.type.shape
    k = mm.inputs[0].type.shape[-1]
    batches = 1
    for d in batch:
        batches *= d
    if 2 * batches * m * n * k < PARALLEL_MIN_FLOPS:
        return 1
    nr = tiles(mm.output.type.dtype)[2]
    return max(1, min(threads, -(-n // nr)))


def _pthread(module: ir.Module) -> tuple[ir.Function, ir.Function]:
    create = module.globals.get("pthread_create")
    if create is None:
        start = ir.FunctionType(I8.as_pointer(), [I8.as_pointer()]).as_pointer()
        create = ir.Function(module, ir.FunctionType(
            ir.IntType(32), [I64.as_pointer(), I8.as_pointer(), start, I8.as_pointer()]),
            "pthread_create")
        ir.Function(module, ir.FunctionType(
            ir.IntType(32), [I64, I8.as_pointer().as_pointer()]), "pthread_join")
    return create, module.globals["pthread_join"]


def _trampoline(module: ir.Module, kernel: ir.Function) -> ir.Function:
    """`i8* tramp(i8* ctx)`: ctx is {i64 part, i8* args[...]}; calls kernel(args..., part)."""
    n = len(kernel.args) - 1
    ctx_type = ir.LiteralStructType([I64] + [I8.as_pointer()] * n)
    fn = ir.Function(module, ir.FunctionType(I8.as_pointer(), [I8.as_pointer()]),
                     f"{kernel.name}.part")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ctx = b.bitcast(fn.args[0], ctx_type.as_pointer())
    zero = ir.Constant(ir.IntType(32), 0)
    part = b.load(b.gep(ctx, [zero, zero]))
    args = [b.bitcast(b.load(b.gep(ctx, [zero, ir.Constant(ir.IntType(32), 1 + i)])),
                      kernel.args[i].type) for i in range(n)]
    b.call(kernel, args + [part])
    b.ret(ir.Constant(I8.as_pointer(), None))
    return fn


def call_parallel(b: ir.IRBuilder, kernel: ir.Function, args: list[ir.Value],
                  parts: int) -> None:
    """Run `kernel(args..., part)` for part in 0..parts-1 on `parts` threads and wait."""
    if parts == 1:
        b.call(kernel, args + [ir.Constant(I64, 0)])
        return
    module = b.module
    create, join = _pthread(module)
    tramp = _trampoline(module, kernel)
    ctx_type = ir.LiteralStructType([I64] + [I8.as_pointer()] * len(args))
    zero = ir.Constant(ir.IntType(32), 0)
    started = []
    for part in range(1, parts):
        ctx = b.alloca(ctx_type)
        b.store(ir.Constant(I64, part), b.gep(ctx, [zero, zero]))
        for i, arg in enumerate(args):
            b.store(b.bitcast(arg, I8.as_pointer()),
                    b.gep(ctx, [zero, ir.Constant(ir.IntType(32), 1 + i)]))
        tid = b.alloca(I64)
        status = b.call(create, [tid, ir.Constant(I8.as_pointer(), None), tramp,
                                 b.bitcast(ctx, I8.as_pointer())])
        failed = b.icmp_signed("!=", status, ir.Constant(ir.IntType(32), 0))
        with b.if_then(failed):
            b.call(kernel, args + [ir.Constant(I64, part)])  # no thread: run it here
        started.append((tid, failed))
    b.call(kernel, args + [ir.Constant(I64, 0)])
    for tid, failed in started:
        with b.if_then(b.not_(failed)):
            b.call(join, [b.load(tid), ir.Constant(I8.as_pointer().as_pointer(), None)])
