"""Scheduling: a linear kernel order chosen to lower peak memory.

Input: a fused Graph (source nodes and kernels). Output: the same nodes in a topological order
that also puts every in-place update after all other readers of its target (so the update can
write into the target's buffer) and, among the ready kernels, prefers the one that frees the
most memory (e.g. a gradient consumed by its parameter update right away).
"""
from __future__ import annotations

from graphc.passes.memory import Interval, lower_bound

from graphc.ir import Graph, Node, Value
from graphc.ops.registry import get_op


def _constraints(graph: Graph) -> dict[Node, set[Node]]:
    """Each node's predecessors: producers of its inputs, plus, for a node computing an update,
    every other reader of the updated param or state."""
    before: dict[Node, set[Node]] = {n: set() for n in graph.nodes}
    for n in graph.nodes:
        before[n].update(graph.producers[v] for v in n.inputs if v in graph.producers)
    for name, value in graph.updates.items():
        writer = graph.producers.get(value)
        target = graph.input_map[name].value
        if writer is None:
            continue
        for reader in graph.users.get(target, []):
            # an order constraint that would close a cycle (two updates reading each other's
            # targets) is dropped: that update is then copied instead of written in place
            if reader is not writer and writer not in _predecessors(before, reader):
                before[writer].add(reader)
    return before


def _predecessors(before: dict[Node, set[Node]], node: Node) -> set[Node]:
    """Every node that must come before `node` under the constraints so far."""
    seen, stack = set(), [node]
    while stack:
        for p in before[stack.pop()]:
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def intervals(graph: Graph, nodes: list[Node]) -> list[Interval]:
    """Lifetimes of kernel-produced values over a node order (outputs and updates live on)."""
    step = {n: i for i, n in enumerate(nodes)}
    end = len(nodes)
    last: dict[Value, int] = {}
    for n in nodes:
        for v in n.inputs:
            last[v] = max(last.get(v, 0), step[n])
    for v in list(graph.outputs.values()) + list(graph.updates.values()):
        last[v] = end
    out = []
    for n in nodes:
        if get_op(n.op).kind == "source":
            continue
        for v in n.outputs:
            out.append(Interval(v.name, v.type.nbytes, step[n], max(last.get(v, step[n]),
                                                                     step[n])))
    return out


def _greedy(graph: Graph, before: dict[Node, set[Node]]) -> list[Node]:
    position = {n: i for i, n in enumerate(graph.nodes)}
    remaining = {v: len({u for u in graph.users.get(v, [])}) for n in graph.nodes
                 for v in n.outputs}
    kept = set(graph.outputs.values()) | set(graph.updates.values())
    done: set[Node] = set()
    order: list[Node] = []
    while len(order) < len(graph.nodes):
        ready = [n for n in graph.nodes if n not in done and before[n] <= done]

        def gain(n: Node) -> tuple:
            alloc = sum(v.type.nbytes for v in n.outputs if get_op(n.op).kind != "source")
            freed = sum(v.type.nbytes for v in dict.fromkeys(n.inputs)
                        if remaining.get(v) == 1 and v not in kept and v in graph.producers)
            return (alloc - freed, position[n])

        best = min(ready, key=gain)
        order.append(best)
        done.add(best)
        for v in dict.fromkeys(best.inputs):
            if v in remaining:
                remaining[v] -= 1
    return order


def schedule(graph: Graph) -> Graph:
    """Needs a fused graph; keeps whichever of the given order and the greedy memory-aware
    order has the lower peak of live bytes, both respecting in-place update constraints."""
    before = _constraints(graph)
    candidates = [_greedy(graph, before)]
    position = {n: i for i, n in enumerate(graph.nodes)}
    if all(position[p] < position[n] for n in graph.nodes for p in before[n]):
        candidates.append(list(graph.nodes))
    best = min(candidates, key=lambda order: lower_bound(intervals(graph, order)))
    return graph.replace(nodes=tuple(best))
