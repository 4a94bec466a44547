"""The IR verifier.

Input: a Graph. Output: nothing, or a VerifyError naming the offending node with its location
and printed form: SSA order, unique names, attribute schemas, types against each op's shape rule,
outputs and updates (an update targets a param or state of the same type). The error's
`subject` says which node, input, output or update is at fault (the parser turns it into the
line of the text).
"""
from __future__ import annotations

from typing import NoReturn

from graphc.errors import GraphcError, VerifyError, located
from graphc.ir import ROLES, Graph, Node, Value
from graphc.ops.registry import get_op, normalize_attrs
from graphc.text.printer import format_node


def verify(graph: Graph) -> None:
    """Raise VerifyError unless `graph` is well formed."""
    defined: set[Value] = set()
    names: set[str] = set()
    for gi in graph.inputs:
        if gi.role not in ROLES:
            raise VerifyError(f"input %{gi.name}: unknown role {gi.role!r}", ("input", gi.name))
        if gi.name in names:
            raise VerifyError(f"input %{gi.name} is defined twice", ("input", gi.name))
        names.add(gi.name)
        defined.add(gi.value)
    for node in graph.nodes:
        _verify_node(node, defined, names)
    _verify_results(graph, defined)


def _fail(node: Node, message: str) -> NoReturn:
    raise VerifyError(located(message, node.loc, format_node(node, with_loc=False)), node)


def _verify_node(node: Node, defined: set[Value], names: set[str]) -> None:
    """Inputs defined before use, attributes and types as the op's record says, new names."""
    for v in node.inputs:
        if v not in defined:
            _fail(node, f"{node.op} reads %{v.name} before it is defined")
    try:
        op = get_op(node.op)
        if dict(node.attrs) != normalize_attrs(op, dict(node.attrs)):
            _fail(node, f"{node.op}: attributes do not match the op's schema")
        if op.arity is not None and len(node.inputs) != op.arity:
            _fail(node, f"{node.op} takes {op.arity} inputs, has {len(node.inputs)}")
        expected = op.infer([v.type for v in node.inputs], dict(node.attrs))
    except VerifyError:
        raise
    except GraphcError as err:
        _fail(node, str(err))
    if [v.type for v in node.outputs] != list(expected):
        _fail(node, f"{node.op}: output types {[str(v.type) for v in node.outputs]} differ from "
                    f"the shape rule's {[str(t) for t in expected]}")
    for v in node.outputs:
        if v.name in names:
            _fail(node, f"value %{v.name} is defined twice")
        names.add(v.name)
        defined.add(v)


def _verify_results(graph: Graph, defined: set[Value]) -> None:
    """Outputs name defined values; updates replace a param or state with its own type."""
    for key, v in graph.outputs.items():
        if v not in defined:
            raise VerifyError(f"output {key!r} refers to undefined %{v.name}", ("output", key))
    for key, v in graph.updates.items():
        target = graph.input_map.get(key)
        if target is None or target.role == "input":
            raise VerifyError(f"update of %{key}: not a param or state of the graph",
                              ("update", key))
        if v not in defined or v.type != target.value.type:
            raise VerifyError(f"update of %{key}: %{v.name} must be defined with type "
                              f"{target.value.type}", ("update", key))
