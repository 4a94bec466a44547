"""Facts about the host machine that code is generated for.

Input: nothing but the host (llvmlite's view of its CPU and the process triple). Output: the CPU
name and the feature string code is generated for (with graphc's tuning), a target machine for
it, and the f32 vector width the kernels are blocked for. The JIT (jit.py), the compile cache's
key (cache.py), the GEMM tiles (kernels/gemm.py) and the FMA peak (peak.py) all read them here,
so they agree on one host.
"""
from __future__ import annotations

import functools

import llvmlite.binding as llvm

# AVX-512 scatters are microcoded on AMD cores: LeNet's 2x2 pool, vectorised with scattered
# mask stores, took 268 us a step against 121 us with this tuning (whole LeNet step 2.58 ->
# 2.43 ms, thread time, same process order); gathers stay (col2im: 279 us with, 567 without).
_X86_TUNING = ",+prefer-no-scatter"


@functools.cache
def init_native_target() -> None:
    """Initialise LLVM's code generator and assembly printer for the host (once)."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@functools.cache
def host_cpu() -> tuple[str, str]:
    """The CPU name and the feature string code is generated for (the cache keys on both)."""
    init_native_target()
    features = llvm.get_host_cpu_features().flatten()
    if llvm.get_process_triple().startswith(("x86_64", "i386", "i686")):
        features += _X86_TUNING
    return llvm.get_host_cpu_name(), features


def host_target_machine(opt: int = 3) -> llvm.TargetMachine:
    """A new target machine for this CPU (its name and features) at code generation level `opt`.

    Not shared: an MCJIT engine takes ownership of its target machine and frees it.
    """
    cpu, features = host_cpu()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=cpu, features=features, opt=opt,
                                        codemodel="jitdefault")


@functools.cache
def host_vector_lanes() -> int:
    """f32 lanes of the widest vector unit the host has."""
    init_native_target()
    features = llvm.get_host_cpu_features()
    if features.get("avx512f"):
        return 16
    if features.get("avx2"):
        return 8
    return 4
