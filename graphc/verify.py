"""The IR verifier.

Input: a Graph. Output: nothing, or a VerifyError naming the offending node with its location
and printed form: SSA order, unique names, attribute schemas, types against each op's shape rule,
outputs and updates (an update targets a param or state of the same type).
"""
from __future__ import annotations

from graphc.errors import GraphcError, VerifyError, located
from graphc.ir import Graph
from graphc.ops.registry import get_op, normalize_attrs


def verify(graph: Graph) -> None:
    """Raise VerifyError unless `graph` is well formed."""
    from graphc.text.printer import format_node

    defined: set = set()
    names: set[str] = set()
    for gi in graph.inputs:
        if gi.role not in ("input", "param", "state"):
            raise VerifyError(f"input %{gi.name}: unknown role {gi.role!r}")
        if gi.name in names:
            raise VerifyError(f"input %{gi.name} is defined twice")
        names.add(gi.name)
        defined.add(gi.value)
    for node in graph.nodes:
        def fail(msg: str, node=node) -> None:
            raise VerifyError(located(msg, node.loc, format_node(node, with_loc=False)))

        for v in node.inputs:
            if v not in defined:
                fail(f"{node.op} reads %{v.name} before it is defined")
        try:
            op = get_op(node.op)
            if dict(node.attrs) != normalize_attrs(op, dict(node.attrs)):
                fail(f"{node.op}: attributes do not match the op's schema")
            if op.arity is not None and len(node.inputs) != op.arity:
                fail(f"{node.op} takes {op.arity} inputs, has {len(node.inputs)}")
            expected = op.infer([v.type for v in node.inputs], dict(node.attrs))
        except VerifyError:
            raise
        except GraphcError as err:
            fail(str(err))
        if [v.type for v in node.outputs] != list(expected):
            fail(f"{node.op}: output types {[str(v.type) for v in node.outputs]} differ from the "
                 f"shape rule's {[str(t) for t in expected]}")
        for v in node.outputs:
            if v.name in names:
                fail(f"value %{v.name} is defined twice")
            names.add(v.name)
            defined.add(v)
    for key, v in graph.outputs.items():
        if v not in defined:
            raise VerifyError(f"output {key!r} refers to undefined %{v.name}")
    for key, v in graph.updates.items():
        target = graph.input_map.get(key)
        if target is None or target.role == "input":
            raise VerifyError(f"update of %{key}: not a param or state of the graph")
        if v not in defined or v.type != target.value.type:
            raise VerifyError(f"update of %{key}: %{v.name} must be defined with type "
                              f"{target.value.type}")
