"""The memory plan as text, for `--print-after plan` and golden tests.

Input: a kernel Graph, its `BufferPlan` (runtime/buffers.py) and the thread count it was made
for. Output: a header with the kernel count and the plan's bytes (naive_bytes, planned_bytes,
lower_bound_bytes, arena_bytes), then one line per buffer in the order it comes to life, with
its type, where it lives (arena or constants offset and size, or io/param slot) and its
lifetime over the kernel steps (graph node positions, as in the kernel names `k<step>_...`),
then the copies the entry function makes at its start and end.
"""
from __future__ import annotations

from graphc.passes.schedule import intervals
from graphc.runtime.buffers import BufferPlan, Loc
from graphc.runtime.kernels.loop import scratch_bytes

from graphc.ir import Graph, Value

END = "end"  # lifetime bound of outputs and updates: live until the step returns


def _where(loc: Loc, nbytes: int) -> str:
    if loc.space in ("arena", "const"):
        return f"{loc.space} @{loc.at} {nbytes} B"
    return f"{loc.space}[{loc.at}]"


def _last_use(graph: Graph) -> dict[Value, int | str]:
    """Each value's last reading step; outputs and updates live to the end."""
    last: dict[Value, int | str] = {}
    for step, node in enumerate(graph.nodes):
        for v in node.inputs:
            last[v] = step
    for v in (*graph.outputs.values(), *graph.updates.values()):
        last[v] = END
    return last


def _lifetimes(graph: Graph) -> dict[str, tuple[int | str, int | str]]:
    """Value name -> (first step, last step): kernel values from the schedule's intervals,
    graph inputs from their readers (`in`: live when the step is called)."""
    end = len(graph.nodes)
    spans: dict[str, tuple[int | str, int | str]] = {
        iv.name: (iv.start, END if iv.end >= end else iv.end)
        for iv in intervals(graph, list(graph.nodes))}
    last = _last_use(graph)
    for i in graph.inputs:
        spans[i.name] = ("in", last.get(i.value, "in"))
    return spans


def _buffer_lines(graph: Graph, plan: BufferPlan) -> list[str]:
    spans = _lifetimes(graph)
    notes = {v: f" (output {name})" for name, v in graph.outputs.items()
             if plan.loc[v] == Loc("io", plan.output_slots[name])}
    notes.update((v, f" (in place of {name})") for v, name in plan.inplace.items())
    rows = []
    for v, loc in plan.loc.items():
        first, last = spans.get(v.name, ("const", "const"))
        live = "constant" if first == "const" else f"live {first}..{last}"
        rows.append((first, f"%{v.name}: {v.type}",
                     _where(loc, v.type.nbytes) + notes.get(v, ""), live))
    for step, offset in plan.scratch.items():
        size = scratch_bytes(graph.nodes[step], plan.parts.get(step, 1))
        rows.append((step, f"scratch of k{step}", _where(Loc("arena", offset), size),
                     f"live {step}..{step}"))
    order = {"in": -2, "const": -1}
    rows.sort(key=lambda row: order.get(row[0], row[0]))  # stable: plan order within a step
    return [f"  {name}  {where}  {live}" for _, name, where, live in rows]


def _copy_lines(label: str, copies: list[tuple[Loc, Loc, int]]) -> list[str]:
    return [f"  {label}: {_where(src, nbytes)} -> {_where(dst, nbytes)}"
            for src, dst, nbytes in copies]


def format_plan(graph: Graph, plan: BufferPlan, threads: int) -> str:
    """The plan as text: see the module docstring."""
    kernels = sum(1 for n in graph.nodes if n.op == "fused")
    stats = "  ".join(f"{key} {value:,}" for key, value in
                      (*plan.stats.items(), ("arena_bytes", plan.arena_bytes)))
    header = (f"plan {graph.name}: {kernels} kernels, {threads} threads, "
              f"{len(plan.inplace)} in-place updates")
    lines = [header, f"  {stats}",
             *_buffer_lines(graph, plan),
             *_copy_lines("copy at start", plan.start_copies),
             *_copy_lines("copy at end", plan.end_copies)]
    return "\n".join(lines) + "\n"
