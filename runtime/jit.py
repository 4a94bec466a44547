"""JIT compilation of lowered modules for the host CPU (target.py says which CPU).

Input: the LLVM IR text of the modules lower.py builds (an entry module and kernel modules).
Output: a `JitModule` holding one MCJIT engine loaded with the object file of every module (kept
alive as long as the code is used), the address of the entry function and the time spent. The
modules compile concurrently, each in its own LLVM context with its own target machine and pass
builder; their object files are cached together (cache.py). The optimised IR text and the host
assembly are made again on demand.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import llvmlite.binding as llvm
from graphc.runtime import cache
from graphc.runtime.lower import ModuleText
from graphc.runtime.target import host_target_machine
from llvmlite.binding import ffi

from graphc.errors import CompileError

# libm functions the kernels call (tanh, erf) or that LLVM may lower intrinsics to (exp, log,
# pow, floor, ceil, roundeven).
_LIBM_SYMBOLS = ("tanhf", "tanh", "expf", "exp", "logf", "log", "powf", "pow", "erff", "erf",
                 "floorf", "floor", "ceilf", "ceil", "roundevenf", "roundeven")


@functools.cache
def _link_host_symbols() -> None:
    """Make the C library functions the kernels call resolvable by the JIT's linker (once)."""
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    for name in _LIBM_SYMBOLS:
        llvm.add_symbol(name, ctypes.cast(getattr(libm, name), ctypes.c_void_p).value)
    libc = ctypes.CDLL(None)  # the fork/join of parallel kernels (runtime/parallel.py)
    for name in ("pthread_create", "pthread_join"):
        llvm.add_symbol(name, ctypes.cast(getattr(libc, name), ctypes.c_void_p).value)


def compile_workers() -> int:
    """Threads that compile modules at once: the cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _unlocked(name: str):
    """llvmlite serialises every call into LLVM with one process-wide lock. Optimising a module
    and generating its code touch only that module, its context and its target machine (LLVM
    compiles separate contexts concurrently), so these two calls go around the lock (ctypes
    releases the GIL during them) and modules compile in parallel."""
    fn = getattr(ffi.lib, name)
    return getattr(fn, "_cfn", fn)


def optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """The new pass manager's O3 pipeline with loop vectorisation. Loop unrolling is off: the
    GEMM tiles are unrolled by construction and the vectoriser interleaves the rest; unrolling
    doubled compile time (1.45 s -> 0.74 s cold for the MLP step without it) for no measurable
    step-time gain. SLP vectorisation is off: kernels are loops (vectorised by the loop
    vectoriser) or explicit vector code; on the MLP, LeNet and encoder steps it changed only a
    few address computations in 8 of 85 kernels, for 14% of the optimisation time."""
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = False
    pto.loop_unrolling = False
    pb = llvm.create_pass_builder(tm, pto)
    mpm = pb.getModulePassManager()
    _unlocked("LLVMPY_RunNewModulePassManager")(mpm, mod, pb)


def emit_object(tm: llvm.TargetMachine, mod: llvm.ModuleRef) -> bytes:
    """`tm.emit_object(mod)`, outside llvmlite's lock."""
    with ffi.OutputString() as err:
        buf = _unlocked("LLVMPY_TargetMachineEmitToMemory")(tm, mod, 1, err)
        if not buf:
            raise CompileError(f"LLVM could not generate code: {err}")
    try:
        return ctypes.string_at(ffi.lib.LLVMPY_GetBufferStart(buf),
                                ffi.lib.LLVMPY_GetBufferSize(buf))
    finally:
        ffi.lib.LLVMPY_DisposeMemoryBuffer(buf)


def _codegen_level(module: ModuleText) -> int:
    """The entry module only computes addresses and calls kernels once per step: it is not
    optimised and gets the fast code generator (0.11 s -> 0.02 s for the encoder's)."""
    return 0 if module.entry else 3


def _optimized(module: ModuleText) -> tuple[llvm.ModuleRef, llvm.TargetMachine,
                                            tuple[float, float]]:
    """The module parsed into a context of its own and optimised; with the seconds spent
    parsing and optimising."""
    context = llvm.create_context()
    tm = host_target_machine(_codegen_level(module))
    t0 = time.perf_counter()
    try:
        mod = llvm.parse_assembly(module.text, context=context)
        mod.verify()
    except RuntimeError as err:
        raise CompileError(f"LLVM rejected the generated module: {err}") from None
    mod.triple, mod.data_layout = tm.triple, str(tm.target_data)
    t1 = time.perf_counter()
    if not module.entry:
        optimize(mod, tm)
    return mod, tm, (t1 - t0, time.perf_counter() - t1)


@dataclass
class _Object:
    data: bytes
    seconds: tuple[float, float, float]  # parsing, optimising, generating code


def _compile(module: ModuleText) -> _Object:
    mod, tm, seconds = _optimized(module)
    t0 = time.perf_counter()
    data = emit_object(tm, mod)
    return _Object(data, (*seconds, time.perf_counter() - t0))


def _compile_all(modules: list[ModuleText], workers: int) -> list[_Object]:
    """Every module's object, in order; the costliest start first on up to `workers` threads."""
    if workers <= 1 or len(modules) <= 1:
        return [_compile(m) for m in modules]
    host_target_machine()  # initialise LLVM once, before the threads
    order = sorted(range(len(modules)), key=lambda i: -modules[i].cost)
    with ThreadPoolExecutor(min(workers, len(modules))) as pool:
        futures = {i: pool.submit(_compile, modules[i]) for i in order}
    return [futures[i].result() for i in range(len(modules))]


class JitModule:
    """Machine code for lowered modules in this process, from the disk cache when possible.

    `build()` makes the modules' text; it is only called on a cache miss (or when the IR text or
    assembly is asked for). `key` is the cache key (None: no caching). `workers` threads
    compile. The modules compile side by side, so the phases' seconds are the wall time of the
    compile split in proportion to the time the threads spent in each."""

    def __init__(self, build: Callable[[], list[ModuleText]], entry: str,
                 key: str | None = None, workers: int = 1):
        self._build, self.key = build, key
        self.parse_seconds = self.optimize_seconds = self.jit_seconds = 0.0
        objects = cache.load(key) if key else None
        self.cached = objects is not None
        if objects is None:
            objects = self._compile(workers)
            if key:
                cache.store(key, objects)
        t0 = time.perf_counter()
        _link_host_symbols()
        self._tm = host_target_machine()
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self._tm)
        for data in objects:
            self.engine.add_object_file(llvm.ObjectFileRef.from_data(data))
        self.engine.finalize_object()
        self.address = self.engine.get_function_address(entry)
        self.jit_seconds += time.perf_counter() - t0
        self.modules = len(objects)
        if not self.address:
            raise CompileError(f"JIT did not produce the entry function {entry!r}")

    def _compile(self, workers: int) -> list[bytes]:
        t0 = time.perf_counter()
        modules = self._build()
        t1 = time.perf_counter()
        objects = _compile_all(modules, workers)
        wall = time.perf_counter() - t1
        spent = [sum(o.seconds[i] for o in objects) for i in range(3)]
        share = wall / (sum(spent) or 1.0)
        self.parse_seconds = t1 - t0 + spent[0] * share
        self.optimize_seconds, self.jit_seconds = spent[1] * share, spent[2] * share
        return [o.data for o in objects]

    @functools.cached_property
    def llvm_ir(self) -> str:
        """The optimised modules' text, the entry's first (made again on demand)."""
        return "\n".join(str(_optimized(m)[0]) for m in self._build())

    @functools.cached_property
    def asm(self) -> str:
        """Host assembly of the optimised modules (generated on first use)."""
        parts = []
        for module in self._build():
            mod, tm, _ = _optimized(module)
            parts.append(tm.emit_assembly(mod))
        return "\n".join(parts)
