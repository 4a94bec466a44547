"""The native executable: persistent buffers, cached pointer tables, one native call per run.

Input: a Graph, its BufferPlan and the JitModule holding `graphc_main`. Output:
`NativeExecutable`, whose `run(feeds)` validates feeds, fills the io pointer table (no copies
for contiguous feeds of the right dtype), calls the native step once and returns fresh output
arrays; params and state live in persistent buffers that the step updates in place. (The public
`graphc.Executable` of graphc/compile.py wraps one.)
"""
from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
from graphc.runtime.buffers import BufferPlan, aligned_empty, check_fits
from graphc.runtime.emit.emitter import ERROR_CELL
from graphc.runtime.jit import JitModule
from graphc.runtime.lower import kernel_nodes
from graphc.runtime.profile import PROFILE_CELLS, KernelProfile, kernel_flops, kernel_ops

from graphc.errors import CompileError, FeedError, GraphcError, located
from graphc.interpret import check_feeds
from graphc.ir import Graph
from graphc.ops.registry import get_op
from graphc.text.printer import format_node

_ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


def _pointer(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def persistent_buffers(graph: Graph) -> dict[str, np.ndarray]:
    """Aligned copies of the initializers of every param and state input that has one."""
    out = {}
    for i in graph.inputs:
        init = graph.initializers.get(i.name)
        if i.role == "input" or init is None:
            continue
        t = i.value.type
        if np.shape(init) != t.shape:
            raise CompileError(f"initializer of {i.role} {i.name!r} has shape {np.shape(init)}, "
                            f"expected {t}")
        buf = aligned_empty(t.nbytes, f"{i.role} {i.name!r} ({t})").view(t.np_dtype).reshape(
            t.shape)
        buf[...] = np.asarray(init, dtype=t.np_dtype)
        out[i.name] = buf
    return out


def _arena_label(graph: Graph) -> str:
    """The arena, named by the graph and its largest value (what to shrink)."""
    values = [v for n in graph.nodes for v in n.outputs] + [i.value for i in graph.inputs]
    big = max(values, key=lambda v: v.type.nbytes, default=None)
    largest = f"; its largest value is %{big.name}: {big.type}" if big is not None else ""
    return f"the working memory of graph {graph.name!r}{largest}"


class NativeExecutable:
    """A compiled graph: `run(feeds) -> outputs`, with persistent `params`.

    `params` is a read-only mapping of the persistent buffers (assign into them with
    `exe.params["w"][...] = value`). `run` reuses one arena and pointer tables, so calls from
    several threads are serialised by `lock` (hold it to read the params between steps).
    """

    def __init__(self, graph: Graph, plan: BufferPlan, jit: JitModule, stats: dict,
                 profiled: bool = False):
        self.graph = graph
        self.plan = plan
        self._jit = jit  # owns the machine code: keep alive as long as the function pointer
        self._fn = _ENTRY_TYPE(jit.address)
        self._error = ctypes.c_int64.from_address(jit.engine.get_global_value_address(ERROR_CELL))
        self.lock = threading.RLock()  # held by a run, and by whoever reads params whole
        self._kernels = kernel_nodes(graph)
        self._cycles = (ctypes.c_int64 * max(len(self._kernels), 1)).from_address(
            jit.engine.get_global_value_address(PROFILE_CELLS)) if profiled else None
        for what, values in (("input", {i.name: i.value for i in graph.inputs}),
                             ("output", graph.outputs)):
            for name, v in values.items():  # fed or made on every run: they must fit too
                check_fits(v.type.nbytes, f"graph {graph.name!r}'s {what} {name!r} ({v.type})")
        self._arena = aligned_empty(plan.arena_bytes, _arena_label(graph))
        self._buffers = persistent_buffers(graph)
        self.params: Mapping[str, np.ndarray] = MappingProxyType(self._buffers)
        self._param_ptrs = np.zeros(len(plan.param_slots) + 1, np.uintp)
        for name, slot in plan.param_slots.items():
            if name in self._buffers:
                self._param_ptrs[slot] = _pointer(self._buffers[name])
        self._param_ptrs[plan.const_slot] = _pointer(plan.const_buffer)
        self._io = np.zeros(len(plan.input_slots) + len(plan.output_slots), np.uintp)
        self._updated = [self._buffers[name] for name in graph.updates]
        self.stats = stats
        self._static_args = (_pointer(self._arena), _pointer(self._param_ptrs), _pointer(self._io))
        # the fast path of `run`: what a well-formed call looks like, checked cheaply
        self._expected = {i.name: (i.value.type.shape, i.value.type.np_dtype,
                                   plan.input_slots.get(i.name))  # None: unused
                          for i in graph.inputs_with_role("input")}
        self._output_slots = [(name, slot, graph.outputs[name].type.shape,
                               graph.outputs[name].type.np_dtype)
                              for name, slot in plan.output_slots.items()]
        self._updated_ranges = [(_pointer(a), _pointer(a) + a.nbytes) for a in self._updated]
        self._fast_ok = all(name in self._buffers for name in plan.param_slots)
        # feed name -> (weak reference to the last array fed, its data pointer): `ctypes.data`
        # costs ~1.4 us a call; an array's buffer stays put while it lives with its shape
        self._last_pointer: dict[str, tuple[weakref.ref, int]] = {}

    @property
    def llvm_ir(self) -> str:
        return self._jit.llvm_ir

    def kernel_profile(self, rate: float) -> list[KernelProfile]:
        """Each kernel's counted time since compiling or the last `reset_profile` (cycles over
        `rate`, the counter's cycles per second), for a step compiled with profiling on."""
        if self._cycles is None:
            raise GraphcError("this step was compiled without profiling: call "
                              "gc.set_profiling(True) before compiling it")
        return [KernelProfile(k, f"k{index}", node.attrs.get("kind", get_op(node.op).kind),
                              kernel_ops(node), kernel_flops(node), self._cycles[k] / rate)
                for k, (index, node) in enumerate(self._kernels)]

    def reset_profile(self) -> None:
        if self._cycles is not None:
            ctypes.memset(self._cycles, 0, ctypes.sizeof(self._cycles))

    @property
    def asm(self) -> str:
        return self._jit.asm

    def exact_feeds(self, feeds: Mapping[str, np.ndarray]) -> list | None:
        """Non-None if `feeds` pass every check `run` would make (see _fast_feeds)."""
        return self._fast_feeds(feeds) if self._fast_ok else None

    def _fast_feeds(self, feeds: Mapping[str, np.ndarray]) -> list | None:
        """(io slot, pointer) of each feed when the feeds are exactly the inputs, as
        C-contiguous arrays of the right shape and dtype, none overlapping a buffer the step
        writes; else None (the full checks then run and name what is wrong)."""
        expected = self._expected
        if len(feeds) != len(expected):
            return None
        pointers = []
        for name, array in feeds.items():
            want = expected.get(name)
            if (want is None or type(array) is not np.ndarray or array.shape != want[0]
                    or array.dtype != want[1] or not array.flags.c_contiguous):
                return None
            last = self._last_pointer.get(name)
            if last is not None and last[0]() is array:
                start = last[1]
            else:
                start = array.ctypes.data
                self._last_pointer[name] = (weakref.ref(array), start)
            end = start + array.nbytes
            for lo, hi in self._updated_ranges:
                if start < hi and lo < end:
                    return None
            if want[2] is not None:
                pointers.append((want[2], start))
        return pointers

    def run(self, feeds: Mapping[str, np.ndarray], exact: list | None = None
            ) -> dict[str, np.ndarray]:
        """One step: outputs as fresh arrays; params/state updated in place. `exact` is what
        `exact_feeds(feeds)` returned for these same feeds, if the caller has it already.
        Calls from several threads are serialised (`lock`): they share one arena, pointer
        tables and params."""
        with self.lock:
            return self._run(feeds, exact)

    def _run(self, feeds: Mapping[str, np.ndarray], exact: list | None
             ) -> dict[str, np.ndarray]:
        fast = exact or (self._fast_feeds(feeds) if self._fast_ok else None)
        if fast is not None:
            io = self._io
            for slot, pointer in fast:
                io[slot] = pointer
            outputs = {}
            for name, slot, shape, dtype in self._output_slots:
                out = outputs[name] = np.empty(shape, dtype)
                io[slot] = out.ctypes.data
            self._fn(*self._static_args)
            self._raise_on_error()
            return outputs
        given = self._unaliased(check_feeds(self.graph, feeds))
        io = self._io
        for name, slot in self.plan.input_slots.items():
            io[slot] = _pointer(given[name])
        outputs = {}
        for name, slot in self.plan.output_slots.items():
            t = self.graph.outputs[name].type
            outputs[name] = np.empty(t.shape, t.np_dtype)
            io[slot] = _pointer(outputs[name])
        swapped = self._bind_params(given)
        try:
            self._fn(*self._static_args)
        finally:
            for slot, ptr in swapped:
                self._param_ptrs[slot] = ptr
        self._raise_on_error()
        return outputs

    def _raise_on_error(self) -> None:
        """A kernel found invalid data (e.g. a computed gather index out of range; it read a
        clamped, valid element instead): report it rather than return the clamped result."""
        code = self._error.value
        if code:
            self._error.value = 0
            node = self.graph.nodes[code - 1]
            raise GraphcError(located("an index computed inside the compiled step is out of "
                                      "range (the interpreter raises here too); outputs and "
                                      "updated params of this step are not valid", node.loc,
                                      format_node(node)))

    def _unaliased(self, given: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copy feeds that overlap a buffer this step writes, so no kernel reads a moving input."""
        for name, array in given.items():
            if any(np.may_share_memory(array, buf) for buf in self._updated):
                given[name] = array.copy()
        return given

    def _bind_params(self, given: dict[str, np.ndarray]) -> list[tuple[int, int]]:
        """Use fed params/state for this call; returns the pointer slots to restore after it.

        A fed value of an updated param is copied into its persistent buffer (the step then
        updates that buffer, never the caller's array); other fed params are used in place.
        """
        swapped = []
        for name, slot in self.plan.param_slots.items():
            if name in given:
                if name in self.graph.updates:
                    np.copyto(self._buffers[name], given[name])
                else:
                    swapped.append((slot, int(self._param_ptrs[slot])))
                    self._param_ptrs[slot] = _pointer(given[name])
            elif name not in self._buffers:
                t = self.graph.input_map[name]
                raise FeedError(f"{t.role} {name!r} has no initializer; feed it as "
                                f"{t.value.type} ({t.value.type.np_dtype})")
        return swapped

    def __repr__(self) -> str:
        return f"<NativeExecutable {self.graph.name}: {self.stats.get('kernels')} kernels>"
