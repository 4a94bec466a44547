"""The printer of the text form: a Graph in, its text out.

Input: a Graph (or one Node). Output: text such as

    graph mlp
      input %x: f32[128,784]
      param %w1: f32[784,512]
      %v0: f32[128,512] = matmul(%x, %w1)  # mlp.py:12
      %v1: f32[] = sum(%v0) {axes=(0, 1), keepdims=False}  # mlp.py:13
      output loss = %v1
      update %w1 = %v7

which parser.py reads back (print -> parse -> print is identical; initializers are not part of
the text). The dependency runs one way: graphc.ir imports this module for `Graph.to_text()`, and
this module imports nothing of graphc at run time. It reads only what a graph exposes (`inputs`,
`nodes`, `outputs`, `updates`, and each node's fields and `body`); graphc.ir's classes appear
in annotations only.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphc.ir import Graph, Node


def format_attrs(node: Node) -> str:
    """` {name=value, ...}` of a node's attributes, sorted, its body graph left out; or ""."""
    shown = {k: v for k, v in node.attrs.items() if node.body is None or v is not node.body}
    if not shown:
        return ""
    return " {" + ", ".join(f"{k}={v!r}" for k, v in sorted(shown.items())) + "}"


def format_node(node: Node, with_loc: bool = True) -> str:
    """One line; a node with a body graph (a fused kernel) shows its ops: `fused[add, relu]`."""
    outs = ", ".join(f"%{v.name}: {v.type}" for v in node.outputs)
    args = ", ".join(f"%{v.name}" for v in node.inputs)
    body = node.body
    name = f"{node.op}[{', '.join(n.op for n in body.nodes)}]" if body is not None else node.op
    text = f"{outs} = {name}({args}){format_attrs(node)}"
    return f"{text}  # {node.loc}" if with_loc and node.loc else text


def _node_lines(node: Node, indent: str) -> list[str]:
    lines = [f"{indent}{format_node(node)}"]
    if node.body is not None:
        for inner in node.body.nodes:
            lines += _node_lines(inner, indent + "    ")
    return lines


def print_graph(graph: Graph) -> str:
    """The text of a whole graph: header, inputs, nodes (bodies indented), outputs, updates."""
    lines = [f"graph {graph.name}"]
    lines += [f"  {i.role} %{i.name}: {i.value.type}" for i in graph.inputs]
    for n in graph.nodes:
        lines += _node_lines(n, "  ")
    lines += [f"  output {k} = %{v.name}" for k, v in graph.outputs.items()]
    lines += [f"  update %{k} = %{v.name}" for k, v in graph.updates.items()]
    return "\n".join(lines) + "\n"
