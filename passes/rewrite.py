"""The rewrite drivers every transforming pass is built on (a helper, not a pass).

Input: a Graph and a rule `rule(builder, node, inputs) -> Tensor | tuple | None` (a function, or
a `PatternTable` from graphc.passes.patterns).
Output: a new Graph in which each node the rule answers for is replaced by the tensors it built
(attributed to the node's location) and every other node is copied with remapped inputs:
`rewrite` makes one sweep in graph order, `rewrite_to_fixed_point` sweeps until the rule answers
for no node. Nodes a replacement leaves unread stay; `dce` drops them.
"""
from __future__ import annotations

from collections.abc import Callable

from graphc.builder import GraphBuilder, Tensor
from graphc.errors import GraphcError
from graphc.ir import Graph, Node, Value

Rule = Callable[[GraphBuilder, Node, list[Tensor]], "Tensor | tuple | None"]

MAX_SWEEPS = 100  # a rule set that still answers after this many sweeps rewrites in a cycle


def rewrite(graph: Graph, rule: Rule) -> Graph:
    """Apply `rule` to every node in order; unanswered nodes are copied."""
    b = GraphBuilder(graph.name)
    b.inputs = list(graph.inputs)
    b.initializers = dict(graph.initializers)
    b._names = set(graph.values)
    env: dict[Value, Value] = {i.value: i.value for i in graph.inputs}
    for node in graph.nodes:
        inputs = [env[v] for v in node.inputs]
        with b.at(node.loc):
            result = rule(b, node, [Tensor(b, v) for v in inputs])
        if result is None:
            b.add_node(Node(node.op, tuple(inputs), node.outputs, node.attrs, node.loc))
            env.update((v, v) for v in node.outputs)
            continue
        results = result if isinstance(result, tuple) else (result,)
        for old, new in zip(node.outputs, results):
            env[old] = new.value
    return Graph(graph.name, graph.inputs, tuple(b.nodes),
                 {k: env[v] for k, v in graph.outputs.items()},
                 {k: env[v] for k, v in graph.updates.items()}, graph.initializers)


def rewrite_to_fixed_point(graph: Graph, rule: Rule) -> Graph:
    """Sweep `rewrite` until a sweep in which `rule` answers for no node."""
    for _ in range(MAX_SWEEPS):
        answered = False

        def counting(b: GraphBuilder, node: Node, inputs: list[Tensor]) -> Tensor | tuple | None:
            nonlocal answered
            result = rule(b, node, inputs)
            answered = answered or result is not None
            return result

        new = rewrite(graph, counting)
        if not answered:
            return new
        graph = new
    raise GraphcError(f"rewrite of graph {graph.name!r} did not reach a fixed point in "
                      f"{MAX_SWEEPS} sweeps: its rules rewrite in a cycle")
