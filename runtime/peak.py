"""This core's f32 FMA ceiling, measured now: what a step's GFLOP/s should be compared with.

Input: nothing but the host (its vector width from target.host_vector_lanes). Output:
`fma_peak_gflops()`, the GFLOP/s one thread reaches on a JIT-compiled loop of ACCUMULATORS
independent vector FMA chains (more than the FMA latency times the FMA units, so the loop is
bound by FMA throughput alone), and `fma_loop(n)`, the loop itself, whose result says it ran.

Why measure: on a shared VM the ceiling is not the data sheet's. This project's Zen 5 VM is
quoted at about 250 GFLOP/s a core; the loop (and the same loop written in C with intrinsics)
reaches 97-117, moving with the host's load. `graphc bench` measures it before and after its
rounds and reports each framework against it.
"""
from __future__ import annotations

import ctypes
import functools
import time

import llvmlite.binding as llvm
from graphc.runtime.kernels.gemm import _vector_fma, lanes_name
from graphc.runtime.target import host_target_machine, host_vector_lanes
from llvmlite import ir

ACCUMULATORS = 12
F32 = ir.FloatType()
I64 = ir.IntType(64)


def _module(lanes: int) -> str:
    """`float fma_loop(i64 n, float b, float c)`: acc_i = acc_i * b + c, n times for each of
    the accumulators (acc_i starts at i), then the sum of every lane of every accumulator.
    b and c are arguments, so no fold turns the FMAs into something cheaper."""
    module = ir.Module("graphc_peak")
    vec = ir.VectorType(F32, lanes)
    fma = _vector_fma(module, vec, lanes_name("f32", lanes))
    fn = ir.Function(module, ir.FunctionType(F32, [I64, F32, F32]), "fma_loop")
    n, b_arg, c_arg = fn.args
    entry, body, done = (fn.append_basic_block(x) for x in ("entry", "body", "done"))
    b = ir.IRBuilder(entry)

    def splat(x):
        return b.shuffle_vector(b.insert_element(ir.Constant(vec, ir.Undefined), x,
                                                 ir.Constant(I64, 0)),
                                ir.Constant(vec, ir.Undefined),
                                ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))
    bv, cv = splat(b_arg), splat(c_arg)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(I64, 0)), body, done)
    b.position_at_end(body)
    i = b.phi(I64)
    accs = [b.phi(vec) for _ in range(ACCUMULATORS)]
    new = [b.call(fma, [acc, bv, cv]) for acc in accs]
    step = b.add(i, ir.Constant(I64, 1))
    i.add_incoming(ir.Constant(I64, 0), entry)
    i.add_incoming(step, body)
    for k, (acc, value) in enumerate(zip(accs, new)):
        acc.add_incoming(ir.Constant(vec, [float(k)] * lanes), entry)
        acc.add_incoming(value, body)
    b.cbranch(b.icmp_signed("<", step, n), body, done)
    b.position_at_end(done)
    finals = [b.phi(vec) for _ in range(ACCUMULATORS)]
    for k, (final, value) in enumerate(zip(finals, new)):
        final.add_incoming(ir.Constant(vec, [float(k)] * lanes), entry)
        final.add_incoming(value, body)
    total = ir.Constant(F32, 0.0)
    for final in finals:
        for lane in range(lanes):
            total = b.fadd(total, b.extract_element(final, ir.Constant(I64, lane)))
    b.ret(total)
    return str(module)


@functools.cache
def _compiled() -> tuple[llvm.ExecutionEngine, ctypes.CFUNCTYPE, int]:
    """The loop compiled for this host (code generation only: there is nothing to optimise,
    and an optimiser must not rewrite the FMAs)."""
    lanes = host_vector_lanes()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(_module(lanes)),
                                        host_target_machine())
    engine.finalize_object()
    kind = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int64, ctypes.c_float, ctypes.c_float)
    return engine, kind(engine.get_function_address("fma_loop")), lanes


def fma_loop(n: int, b: float = 1.0, c: float = 1.0) -> float:
    """Run the loop n times (2 * ACCUMULATORS * lanes flops each); its checksum."""
    return _compiled()[1](n, b, c)


def fma_peak_gflops(seconds: float = 0.05, repeats: int = 3) -> float:
    """The best of `repeats` timings of a loop lasting about `seconds`, in GFLOP/s."""
    lanes = _compiled()[2]
    flops_per_iteration = 2 * ACCUMULATORS * lanes
    n = 1 << 16
    while True:  # size the loop to the requested time
        start = time.perf_counter()
        fma_loop(n)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4 or n >= 1 << 40:
            break
        n *= 4
    n = max(1, int(n * seconds / max(elapsed, 1e-9)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fma_loop(n, 1.0, 1e-7)
        best = min(best, time.perf_counter() - start)
    return n * flops_per_iteration / best / 1e9
