"""The generic node-by-node rewrite driver every transforming pass is built on.

Input: a Graph and a rule `rule(builder, node, inputs) -> Tensor | tuple | None`.
Output: a new Graph in which each node the rule answers for is replaced by the tensors it built
(attributed to the node's location) and every other node is copied with remapped inputs.
"""
from __future__ import annotations

from collections.abc import Callable

from graphc.builder import GraphBuilder, Tensor
from graphc.ir import Graph, Node, Value

Rule = Callable[[GraphBuilder, Node, list[Tensor]], "Tensor | tuple | None"]


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
