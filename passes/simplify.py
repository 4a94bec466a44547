"""Local simplification, common-subexpression elimination and dead-code elimination.

Input: a Graph. Output: an equivalent Graph. `simplify` folds small constant expressions and runs
the pattern table below to a fixed point; `cse` merges nodes with the same op, inputs and attributes; `dce` drops nodes whose values
reach no output or update.
"""
from __future__ import annotations

import numpy as np
from graphc.passes.rewrite import rewrite

from graphc.builder import GraphBuilder, Tensor
from graphc.ir import Graph, Node
from graphc.ops.registry import get_op


def _const(b: GraphBuilder, t: Tensor):
    """The scalar value of a constant tensor whose elements are all equal, else None."""
    producer = b.producer.get(t.value)
    if producer is None or producer.op != "constant" or not producer.attrs["value"]:
        return None
    values = set(producer.attrs["value"])
    return values.pop() if len(values) == 1 else None


def _same(node: Node, t: Tensor) -> bool:
    return t.type == node.output.type


# Each rule: (op, test(b, node, inputs) -> replacement tensor or None). One to three lines each.
PATTERNS = [
    ("mul", lambda b, n, a: a[0] if _const(b, a[1]) == 1 and _same(n, a[0]) else None),
    ("mul", lambda b, n, a: a[1] if _const(b, a[0]) == 1 and _same(n, a[1]) else None),
    ("div", lambda b, n, a: a[0] if _const(b, a[1]) == 1 and _same(n, a[0]) else None),
    ("add", lambda b, n, a: a[0] if _const(b, a[1]) == 0 and _same(n, a[0]) else None),
    ("add", lambda b, n, a: a[1] if _const(b, a[0]) == 0 and _same(n, a[1]) else None),
    ("sub", lambda b, n, a: a[0] if _const(b, a[1]) == 0 and _same(n, a[0]) else None),
    ("neg", lambda b, n, a: _negated(b, a[0])),
    ("broadcast_to", lambda b, n, a: a[0] if _same(n, a[0]) else None),
    ("reshape", lambda b, n, a: a[0] if _same(n, a[0]) else None),
    ("transpose", lambda b, n, a: a[0] if n.attrs["perm"] == tuple(range(len(n.attrs["perm"])))
     else None),
]
_BY_OP: dict[str, list] = {}
for _op, _fn in PATTERNS:
    _BY_OP.setdefault(_op, []).append(_fn)


def _negated(b: GraphBuilder, t: Tensor):
    """neg(neg(x)) -> x."""
    producer = b.producer.get(t.value)
    return Tensor(b, producer.inputs[0]) if producer is not None and producer.op == "neg" else None


FOLD_MAX_ELEMENTS = 16  # fold small constant expressions only; large ones stay computed


def _fold(b: GraphBuilder, node: Node, inputs: list[Tensor]):
    """An op whose inputs are all constants and whose result is small becomes a constant."""
    producers = [b.producer.get(t.value) for t in inputs]
    if not inputs or any(p is None or p.op != "constant" for p in producers):
        return None
    if len(node.outputs) != 1 or node.output.type.size > FOLD_MAX_ELEMENTS:
        return None
    op = get_op(node.op)
    args = [get_op("constant").reference(**p.attrs) for p in producers]
    value = np.asarray(op.reference(*args, **node.attrs), node.output.type.np_dtype)
    return b.lift(value)


def simplify(graph: Graph) -> Graph:
    """Needs a verified graph; folds small constant expressions and applies the algebraic
    pattern table until nothing changes."""
    def rule(b, node, inputs):
        folded = _fold(b, node, inputs)
        if folded is not None:
            return folded
        for fn in _BY_OP.get(node.op, ()):
            out = fn(b, node, inputs)
            if out is not None:
                return out
        return None

    while True:
        new = dce(rewrite(graph, rule))
        if len(new.nodes) == len(graph.nodes):
            return new
        graph = new


def cse(graph: Graph) -> Graph:
    """Needs a verified graph; merges nodes computing the same op on the same inputs."""
    seen: dict[tuple, Node] = {}

    def rule(b, node, inputs):
        key = (node.op, tuple(t.value for t in inputs), tuple(sorted(node.attrs.items())))
        if key in seen:
            return tuple(Tensor(b, v) for v in seen[key].outputs)
        seen[key] = node
        return None

    return rewrite(graph, rule)


def dce(graph: Graph) -> Graph:
    """Keeps only nodes whose values reach an output or an update; order is preserved."""
    live = set(graph.outputs.values()) | set(graph.updates.values())
    kept = []
    for node in reversed(graph.nodes):
        if any(v in live for v in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    return graph.replace(nodes=tuple(reversed(kept)))
