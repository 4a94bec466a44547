"""Decomposition of composite ops into primitives, run after autodiff.

Input: a Graph that may contain composite ops (softmax, log_softmax, softmax_cross_entropy, mse).
Output: an equivalent Graph of primitive ops only (elementwise, reduction, matmul, movement,
source), each new node carrying the location of the composite it came from.
"""
from __future__ import annotations

from graphc.passes.rewrite import rewrite

from graphc.ir import Graph
from graphc.ops.registry import get_op


def decompose(graph: Graph) -> Graph:
    """Needs a verified graph; guarantees no composite op remains (recursively expanded)."""
    def rule(b, node, inputs):
        op = get_op(node.op)
        return op.decompose(*inputs, **node.attrs) if op.kind == "composite" else None

    while any(get_op(n.op).kind == "composite" for n in graph.nodes):
        graph = rewrite(graph, rule)
    return graph
