"""Buffer placement for a graph about to be lowered: where every value lives at run time.

Input: a Graph of primitive ops (composites already decomposed). Output: a `BufferPlan` giving
each value a location (arena offset, io slot, persistent param slot or constants offset), the
compile-time constants, which update values are written straight into their param's buffer,
the copies the entry function does at its end, and the memory statistics.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from graphc.passes.memory import ALIGN, Interval, MemoryPlan, aligned, plan_intervals
from graphc.passes.schedule import intervals
from graphc.runtime.kernels.abi import LOWERED_KINDS
from graphc.runtime.kernels.loop import scratch_bytes, writes_in_place_ok
from graphc.runtime.parallel import kernel_parts

from graphc.errors import CompileError, GraphcError, located
from graphc.ir import Graph, Value
from graphc.ops.registry import get_op
from graphc.text.printer import format_node


@dataclass(frozen=True)
class Loc:
    """A run-time address: `space` is arena | io | param | const, `at` a byte offset or slot."""

    space: str
    at: int


@dataclass
class BufferPlan:
    input_slots: dict[str, int]           # graph input name -> io slot
    output_slots: dict[str, int]          # output name -> io slot (after the inputs)
    param_slots: dict[str, int]           # param/state name -> params slot
    loc: dict[Value, Loc]                 # every value the entry function touches
    consts: dict[Value, np.ndarray]       # source-produced values, evaluated at compile time
    const_buffer: np.ndarray
    arena_bytes: int
    inplace: dict[Value, str]             # update value -> param it is written into
    scratch: dict[int, int] = field(default_factory=dict)  # kernel position -> scratch offset
    parts: dict[int, int] = field(default_factory=dict)    # kernel position -> threads it uses
    start_copies: list[tuple[Loc, Loc, int]] = field(default_factory=list)
    end_copies: list[tuple[Loc, Loc, int]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """Every placement decision, as text (part of the compile cache key)."""
        locs = sorted((v.name, str(loc)) for v, loc in self.loc.items())
        return repr((self.input_slots, self.output_slots, self.param_slots, locs,
                     self.arena_bytes, sorted((v.name, p) for v, p in self.inplace.items()),
                     self.start_copies, self.end_copies, self.scratch, self.parts))

    @property
    def const_slot(self) -> int:
        """The params slot holding the constants buffer's address."""
        return len(self.param_slots)


def check_lowerable(graph: Graph) -> None:
    """Raise one CompileError listing every node whose op kind has no kernel emitter."""
    bad = [n for n in graph.nodes if get_op(n.op).kind not in LOWERED_KINDS + ("source",)]
    if bad:
        lines = [located(f"{n.op} ({get_op(n.op).kind}) cannot be lowered; decompose it first",
                         n.loc, format_node(n)) for n in bad]
        raise CompileError("graph has ops the runtime cannot lower:\n" + "\n".join(lines))


def check_updates(graph: Graph) -> None:
    """Updates target param/state inputs with an initializer and keep their type."""
    for name, value in graph.updates.items():
        target = graph.input_map.get(name)
        if target is None or target.role == "input":
            raise CompileError(f"update of {name!r}: not a param or state input of graph "
                               f"{graph.name!r}")
        if value.type != target.value.type:
            raise CompileError(f"update of {name!r}: value %{value.name}: {value.type} does not "
                               f"match {target.value.type}")
        init = graph.initializers.get(name)
        if init is None:
            raise CompileError(f"{target.role} {name!r} is updated but has no initializer")
        if init.shape != target.value.type.shape:
            raise CompileError(f"initializer of {name!r} has shape {init.shape}, expected "
                               f"{target.value.type}")


def evaluate_sources(graph: Graph) -> dict[Value, np.ndarray]:
    """Run every source node's NumPy reference once."""
    out: dict[Value, np.ndarray] = {}
    for node in graph.nodes:
        op = get_op(node.op)
        if op.kind != "source":
            continue
        try:
            result = op.reference(**node.attrs)
        except GraphcError as err:
            raise CompileError(located(str(err), node.loc, format_node(node))) from None
        v = node.output
        out[v] = np.ascontiguousarray(np.asarray(result).astype(v.type.np_dtype)
                                      .reshape(v.type.shape))
    return out


def pack(arrays: dict[Value, np.ndarray]) -> tuple[np.ndarray, dict[Value, int]]:
    """Concatenate arrays at ALIGN-byte aligned offsets into one uint8 buffer."""
    offsets, size = {}, 0
    for v, a in arrays.items():
        offsets[v] = size
        size = aligned(size + a.nbytes)
    buffer = aligned_empty(size)
    for v, a in arrays.items():
        buffer[offsets[v]:offsets[v] + a.nbytes] = a.reshape(-1).view(np.uint8)
    return buffer, offsets


def machine_bytes() -> int | None:
    """This machine's physical memory, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(nbytes: int, what: str) -> None:
    """A GraphcError naming `what` if `nbytes` exceed the machine's memory."""
    limit = machine_bytes()
    if limit is not None and nbytes > limit:
        raise GraphcError(f"{what} needs {nbytes:,} bytes ({nbytes / 2**30:,.1f} GiB), more "
                          f"than this machine's {limit / 2**30:,.1f} GiB of memory")


def aligned_empty(nbytes: int, what: str = "a buffer") -> np.ndarray:
    """A zeroed uint8 buffer whose data pointer is ALIGN-byte aligned; one larger than the
    machine's memory (or one the allocator refuses) is a GraphcError naming `what`."""
    check_fits(nbytes, what)
    try:
        raw = np.zeros(nbytes + ALIGN, np.uint8)
    except MemoryError:
        raise GraphcError(f"{what}: cannot allocate {nbytes:,} bytes") from None
    skip = -raw.ctypes.data % ALIGN
    return raw[skip:skip + nbytes]


def find_inplace(graph: Graph) -> dict[Value, str]:
    """Update values that can be written straight into their target's buffer.

    The producer must be a kernel that reads the target only at the index it writes
    (`writes_in_place_ok`) and the last reader of the target; neither the target nor the value
    may be a graph output, and the target's old value must not be needed by another update at
    the end of the step.
    """
    order = {n: i for i, n in enumerate(graph.nodes)}
    end_readers = set(graph.outputs.values()) | set(graph.updates.values())
    taken: set[Value] = set()
    out: dict[Value, str] = {}
    for name, value in graph.updates.items():
        target = graph.input_map[name].value
        node = graph.producers.get(value)  # None for an update to the target's own value
        if node is None or value in taken or value in graph.outputs.values():
            continue
        if (node.op != "fused" or target in end_readers
                or not writes_in_place_ok(node, target, value)):
            continue
        if all(order[r] < order[node] for r in graph.users.get(target, []) if r is not node):
            out[value] = name
            taken.add(value)
    return out


def plan_buffers(graph: Graph, threads: int = 1) -> BufferPlan:
    """Place every value: see the module docstring."""
    check_lowerable(graph)
    check_updates(graph)
    inputs = graph.inputs_with_role("input")
    input_slots = {i.name: k for k, i in enumerate(inputs)}
    output_slots = {name: len(inputs) + k for k, name in enumerate(graph.outputs)}
    params = [i for i in graph.inputs if i.role != "input"]
    param_slots = {i.name: k for k, i in enumerate(params)}
    consts = evaluate_sources(graph)
    const_buffer, const_offsets = pack(consts)
    inplace = find_inplace(graph)

    loc: dict[Value, Loc] = {i.value: Loc("io", input_slots[i.name]) for i in inputs}
    loc.update((i.value, Loc("param", param_slots[i.name])) for i in params)
    loc.update((v, Loc("const", off)) for v, off in const_offsets.items())
    loc.update((v, Loc("param", param_slots[name])) for v, name in inplace.items())
    for name, v in graph.outputs.items():
        if v not in loc:
            loc[v] = Loc("io", output_slots[name])
    arena_values = [v for n in graph.nodes if get_op(n.op).kind != "source"
                    for v in n.outputs if v not in loc]
    parts = {k: kernel_parts(n, threads) for k, n in enumerate(graph.nodes) if n.op == "fused"}
    parts = {k: p for k, p in parts.items() if p > 1}
    memory = _place_arena(graph, arena_values, parts)
    loc.update((v, Loc("arena", memory.offsets[v.name])) for v in arena_values)
    plan = BufferPlan(input_slots, output_slots, param_slots, loc, consts, const_buffer,
                      memory.planned_bytes, inplace,
                      scratch={k: memory.offsets[f"{SCRATCH}{k}"]
                               for k in _scratch_users(graph, parts)}, parts=parts)
    _plan_end_copies(graph, plan)
    plan.stats = {"naive_bytes": naive_bytes(graph), "planned_bytes": plan.arena_bytes,
                  "lower_bound_bytes": memory.lower_bound_bytes}
    return plan


SCRATCH = "%scratch"  # name prefix of a kernel's scratch buffer, live while the kernel runs


def _scratch_users(graph: Graph, parts: dict[int, int]) -> dict[int, int]:
    """Kernel position -> scratch bytes (all parts), for the kernels that need scratch."""
    sizes = {k: scratch_bytes(n, parts.get(k, 1)) for k, n in enumerate(graph.nodes)
             if n.op == "fused"}
    return {k: size for k, size in sizes.items() if size}


def _place_arena(graph: Graph, values: list[Value], parts: dict[int, int]) -> MemoryPlan:
    """Offsets for the arena values over the kernel order (dead memory reused); a kernel's
    scratch memory is one more buffer, live only during that kernel."""
    wanted = {v.name for v in values}
    spans = [iv for iv in intervals(graph, list(graph.nodes)) if iv.name in wanted]
    spans += [Interval(f"{SCRATCH}{k}", size, k, k)
              for k, size in _scratch_users(graph, parts).items()]
    return plan_intervals(spans)


def naive_bytes(graph: Graph) -> int:
    """One buffer per value computed by any node, inside kernel bodies too (the unfused,
    unplanned footprint)."""
    total = 0
    for node in graph.nodes:
        if node.body is not None:
            total += naive_bytes(node.body)
        elif get_op(node.op).kind != "source":
            total += sum(v.type.nbytes for v in node.outputs)
    return total


def _plan_end_copies(graph: Graph, plan: BufferPlan) -> None:
    """Outputs not produced in place are copied at the end, then the remaining updates."""
    for name, v in graph.outputs.items():
        dst = Loc("io", plan.output_slots[name])
        if plan.loc[v] != dst:
            plan.end_copies.append((plan.loc[v], dst, v.type.nbytes))
    for name, v in graph.updates.items():
        dst = Loc("param", plan.param_slots[name])
        src = plan.loc[v]
        if src == dst:
            continue
        if _is_old_value_of_updated(graph, v):
            # the old value of another updated param: snapshot it before anything writes
            snap = Loc("arena", plan.arena_bytes)
            plan.arena_bytes = aligned(plan.arena_bytes + v.type.nbytes)
            plan.start_copies.append((src, snap, v.type.nbytes))
            src = snap
        plan.end_copies.append((src, dst, v.type.nbytes))


def _is_old_value_of_updated(graph: Graph, v: Value) -> bool:
    source = graph.input_map.get(v.name)
    return source is not None and source.value == v and v.name in graph.updates
