"""Text form of graphs: `print_graph` and `parse`, which round-trip exactly.

Input: a Graph (print) or its text (parse). Output: text such as

    graph mlp
      input %x: f32[128,784]
      param %w1: f32[784,512]
      %v0: f32[128,512] = matmul(%x, %w1)  # mlp.py:12
      %v1: f32[] = sum(%v0) {axes=(0, 1), keepdims=False}  # mlp.py:13
      output loss = %v1
      update %w1 = %v7

or a Graph (initializers are not part of the text; parsed params have none).
"""
from __future__ import annotations

import ast
import re

from graphc.errors import GraphcError, ParseError
from graphc.ir import ROLES, Graph, GraphInput, Node, Value
from graphc.types import TensorType


def format_attrs(attrs) -> str:
    shown = {k: v for k, v in attrs.items() if not isinstance(v, Graph)}
    if not shown:
        return ""
    return " {" + ", ".join(f"{k}={v!r}" for k, v in sorted(shown.items())) + "}"


def _body(node: Node) -> Graph | None:
    return node.attrs.get("body") if isinstance(node.attrs.get("body"), Graph) else None


def format_node(node: Node, with_loc: bool = True) -> str:
    """One line; a node with a body graph (a fused kernel) shows its ops: `fused[add, relu]`."""
    outs = ", ".join(f"%{v.name}: {v.type}" for v in node.outputs)
    args = ", ".join(f"%{v.name}" for v in node.inputs)
    body = _body(node)
    name = f"{node.op}[{', '.join(n.op for n in body.nodes)}]" if body is not None else node.op
    text = f"{outs} = {name}({args}){format_attrs(node.attrs)}"
    return f"{text}  # {node.loc}" if with_loc and node.loc else text


def _node_lines(node: Node, indent: str) -> list[str]:
    lines = [f"{indent}{format_node(node)}"]
    body = _body(node)
    if body is not None:
        for inner in body.nodes:
            lines += _node_lines(inner, indent + "    ")
    return lines


def print_graph(graph: Graph) -> str:
    lines = [f"graph {graph.name}"]
    lines += [f"  {i.role} %{i.name}: {i.value.type}" for i in graph.inputs]
    for n in graph.nodes:
        lines += _node_lines(n, "  ")
    lines += [f"  output {k} = %{v.name}" for k, v in graph.outputs.items()]
    lines += [f"  update %{k} = %{v.name}" for k, v in graph.updates.items()]
    return "\n".join(lines) + "\n"


_NODE = re.compile(r"(?P<outs>%.+?) = (?P<op>\w+)(?:\[[^\]]*\])?\((?P<args>[^)]*)\)(?: \{(?P<attrs>.*)\})?"
                   r"(?:  # (?P<loc>.*))?$")
_OUT = re.compile(r"%([^\s,(){}=]+?): (\w+\[[\d,]*\])")


def _parse_attrs(text: str | None, where: str) -> dict:
    if not text:
        return {}
    try:
        tree = ast.parse(f"dict({text})", mode="eval")
        return {kw.arg: ast.literal_eval(kw.value) for kw in tree.body.keywords}
    except (SyntaxError, ValueError) as err:
        raise ParseError(f"{where}: bad attributes {{{text}}}: {err}") from None


def parse(text: str, source: str = "<text>") -> Graph:
    """Parse the text form back into a Graph (verified)."""
    from graphc.verify import verify

    lines = [(len(raw) - len(raw.lstrip()), f"{source}:{n}", raw.strip())
             for n, raw in enumerate(text.splitlines(), 1)
             if raw.strip() and not raw.strip().startswith("//")]
    if not lines or not lines[0][2].startswith("graph"):
        raise ParseError(f"{source}: missing `graph NAME` header")
    name = lines[0][2].partition(" ")[2].strip()
    inputs, outputs, updates = [], {}, {}
    values: dict[str, Value] = {}
    node_lines, results = [], []
    for indent, where, line in lines[1:]:
        head, _, rest = line.partition(" ")
        try:
            if head in ROLES and not node_lines:
                m = _OUT.fullmatch(rest.strip())
                if not m:
                    raise ParseError(f"{where}: expected `{head} %name: type`, got {line!r}")
                values[m.group(1)] = Value(m.group(1), TensorType.parse(m.group(2)))
                inputs.append(GraphInput(values[m.group(1)], head))
            elif head in ("output", "update"):
                key, _, ref = rest.partition(" = ")
                results.append((outputs if head == "output" else updates,
                                key.strip().removeprefix("%"), ref, where))
            else:
                node_lines.append((indent, where, line))
                continue
        except ParseError:
            raise
        except GraphcError as err:
            raise ParseError(f"{where}: {err}") from None
        if node_lines and head in ROLES:
            raise ParseError(f"{where}: inputs must come before the nodes")
    nodes = _parse_nodes(node_lines, values)
    for target, key, ref, where in results:
        target[key] = _lookup(values, ref, where)
    graph = Graph(name, tuple(inputs), tuple(nodes), outputs, updates)
    verify(graph)
    return graph


def _lookup(values: dict[str, Value], ref: str, where: str) -> Value:
    ref = ref.strip()
    if not ref.startswith("%") or ref[1:] not in values:
        raise ParseError(f"{where}: unknown value {ref!r}")
    return values[ref[1:]]


def _parse_nodes(lines: list[tuple[int, str, str]], values: dict[str, Value]) -> list[Node]:
    """Node lines at one indentation; more-indented lines after a node form its body graph."""
    from graphc.ops.registry import get_op, normalize_attrs

    nodes, i = [], 0
    while i < len(lines):
        indent, where, line = lines[i]
        j = i + 1
        while j < len(lines) and lines[j][0] > indent:
            j += 1
        m = _NODE.match(line)
        if m is None:
            raise ParseError(f"{where}: cannot parse line {line!r}")
        try:
            op = get_op(m.group("op"))
            outs = [Value(o, TensorType.parse(t)) for o, t in _OUT.findall(m.group("outs"))]
            args = [_lookup(values, a, where) for a in m.group("args").split(",") if a.strip()]
            attrs = _parse_attrs(m.group("attrs"), where)
            if "body" in op.attrs:
                scope = {v.name: v for v in args}
                body_nodes = _parse_nodes(lines[i + 1:j], scope)
                attrs["body"] = Graph(op.name, tuple(GraphInput(v, "input") for v in args),
                                      tuple(body_nodes), {v.name: v for v in outs})
            elif j > i + 1:
                raise ParseError(f"{lines[i + 1][1]}: unexpected indented line")
            attrs = normalize_attrs(op, attrs)
        except ParseError:
            raise
        except GraphcError as err:
            raise ParseError(f"{where}: {err}") from None
        for v in outs:
            if v.name in values:
                raise ParseError(f"{where}: value %{v.name} is defined twice")
            values[v.name] = v
        nodes.append(Node(op.name, tuple(args), tuple(outs), attrs, m.group("loc") or ""))
        i = j
    return nodes
