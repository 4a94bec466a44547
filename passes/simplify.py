"""Local simplification, common-subexpression elimination and dead-code elimination.

Input: a Graph. Output: an equivalent Graph. `simplify` folds small constant expressions and runs
the pattern table below to a fixed point; `cse` merges nodes with the same op, inputs and
attributes; `dce` drops nodes whose values reach no output or update.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from graphc.passes.patterns import Pat, PatternTable
from graphc.passes.rewrite import rewrite, rewrite_to_fixed_point

from graphc.builder import GraphBuilder, Tensor
from graphc.ir import Graph, Node
from graphc.ops import api as F
from graphc.ops.registry import get_op


def _identity_perm(attrs: Mapping[str, Any]) -> bool:
    return attrs["perm"] == tuple(range(len(attrs["perm"])))


x = Pat.var("x")
# The table applies a replacement only if it has the node's type: `x * 1` where the constant
# broadcasts `x` to a larger shape stays, and so does a broadcast_to or reshape that changes it.
RULES = PatternTable([
    (x * 1, lambda x: x),
    (x / 1, lambda x: x),
    (x + 0, lambda x: x),
    (x - 0, lambda x: x),
    (Pat("neg", -x), lambda x: x),
    (Pat("broadcast_to", x), lambda x: x),
    (Pat("reshape", x), lambda x: x),
    (Pat("transpose", x, attrs=_identity_perm), lambda x: x),
])
del x

FOLD_MAX_ELEMENTS = 16  # fold small constant expressions only; large ones stay computed


def _fold(b: GraphBuilder, node: Node, inputs: list[Tensor]) -> Tensor | None:
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


def _fold_or_match(b: GraphBuilder, node: Node, inputs: list[Tensor]) -> Tensor | tuple | None:
    folded = _fold(b, node, inputs)
    return folded if folded is not None else RULES(b, node, inputs)


def _swaps_last_two(perm: tuple[int, ...]) -> bool:
    n = len(perm)
    return n >= 2 and perm == (*range(n - 2), n - 1, n - 2)


def _transposed_products(graph: Graph):
    """The rule (A @ B)^T -> B^T @ A^T, for a product read by that transpose alone.

    Autodiff of `x @ w^T` gives the gradient of w as a transpose of `x^T @ dy`; read by the
    optimizer's update, that transpose became a loop kernel walking a [K, N] matrix by columns
    (25 ms of a 30 ms step for a 512x4608 weight). As `dy^T @ x` the GEMM packs its transposed
    operands itself, and the gradient comes out in the weight's own layout. An operand that is
    itself a swap of the last two axes is used unswapped."""
    users = graph.users
    kept = set(graph.outputs.values()) | set(graph.updates.values())

    def swapped(b: GraphBuilder, t: Tensor) -> Tensor:
        p = b.producer.get(t.value)
        if p is not None and p.op == "transpose" and _swaps_last_two(p.attrs["perm"]):
            return Tensor(b, p.inputs[0])
        return F.swapaxes(t, -1, -2)

    def rule(b: GraphBuilder, node: Node, inputs: list[Tensor]) -> Tensor | None:
        if node.op != "transpose" or not _swaps_last_two(node.attrs["perm"]):
            return None
        product = b.producer.get(inputs[0].value)
        if product is None or product.op != "matmul" or node.inputs[0] in kept or \
                len(users.get(node.inputs[0], [])) != 1:
            return None
        a, c = (Tensor(b, v) for v in product.inputs)
        if a.ndim < 2 or c.ndim < 2:
            return None
        return swapped(b, c) @ swapped(b, a)

    return rule


def simplify(graph: Graph) -> Graph:
    """Needs a verified graph; folds small constant expressions and applies the algebraic
    pattern table until nothing changes, then turns transposed products around (see
    `_transposed_products`)."""
    graph = dce(rewrite_to_fixed_point(graph, _fold_or_match))
    turned = rewrite(graph, _transposed_products(graph))
    return graph if turned.nodes == graph.nodes else \
        dce(rewrite_to_fixed_point(turned, _fold_or_match))


def cse(graph: Graph) -> Graph:
    """Needs a verified graph; merges nodes computing the same op on the same inputs."""
    seen: dict[tuple, Node] = {}

    def rule(b: GraphBuilder, node: Node, inputs: list[Tensor]) -> tuple | None:
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
