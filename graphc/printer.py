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

from .errors import GraphcError, ParseError
from .ir import ROLES, Graph, GraphInput, Node, Value
from .types import TensorType


def format_attrs(attrs) -> str:
    if not attrs:
        return ""
    return " {" + ", ".join(f"{k}={v!r}" for k, v in sorted(attrs.items())) + "}"


def format_node(node: Node, with_loc: bool = True) -> str:
    outs = ", ".join(f"%{v.name}: {v.type}" for v in node.outputs)
    args = ", ".join(f"%{v.name}" for v in node.inputs)
    text = f"{outs} = {node.op}({args}){format_attrs(node.attrs)}"
    return f"{text}  # {node.loc}" if with_loc and node.loc else text


def print_graph(graph: Graph) -> str:
    lines = [f"graph {graph.name}"]
    lines += [f"  {i.role} %{i.name}: {i.value.type}" for i in graph.inputs]
    lines += [f"  {format_node(n)}" for n in graph.nodes]
    lines += [f"  output {k} = %{v.name}" for k, v in graph.outputs.items()]
    lines += [f"  update %{k} = %{v.name}" for k, v in graph.updates.items()]
    return "\n".join(lines) + "\n"


_NODE = re.compile(r"(?P<outs>%.+?) = (?P<op>\w+)\((?P<args>[^)]*)\)(?: \{(?P<attrs>.*)\})?"
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
    from .ops.registry import get_op, normalize_attrs
    from .verify import verify

    name, inputs, nodes, outputs, updates = None, [], [], {}, {}
    values: dict[str, Value] = {}

    def lookup(ref: str, where: str) -> Value:
        ref = ref.strip()
        if not ref.startswith("%") or ref[1:] not in values:
            raise ParseError(f"{where}: unknown value {ref!r}")
        return values[ref[1:]]

    for lineno, raw in enumerate(text.splitlines(), 1):
        line, where = raw.strip(), f"{source}:{lineno}"
        if not line or line.startswith("//"):
            continue
        try:
            head, _, rest = line.partition(" ")
            if head == "graph":
                name = rest.strip()
            elif head in ROLES:
                m = _OUT.fullmatch(rest.strip())
                if not m:
                    raise ParseError(f"{where}: expected `{head} %name: type`, got {line!r}")
                values[m.group(1)] = Value(m.group(1), TensorType.parse(m.group(2)))
                inputs.append(GraphInput(values[m.group(1)], head))
            elif head in ("output", "update"):
                key, _, ref = rest.partition(" = ")
                target = outputs if head == "output" else updates
                target[key.strip().removeprefix("%")] = lookup(ref, where)
            elif (m := _NODE.match(line)) is not None:
                op = get_op(m.group("op"))
                outs = [Value(o, TensorType.parse(t)) for o, t in _OUT.findall(m.group("outs"))]
                args = [lookup(a, where) for a in m.group("args").split(",") if a.strip()]
                attrs = normalize_attrs(op, _parse_attrs(m.group("attrs"), where))
                for v in outs:
                    if v.name in values:
                        raise ParseError(f"{where}: value %{v.name} is defined twice")
                    values[v.name] = v
                nodes.append(Node(op.name, tuple(args), tuple(outs), attrs, m.group("loc") or ""))
            else:
                raise ParseError(f"{where}: cannot parse line {line!r}")
        except ParseError:
            raise
        except GraphcError as err:
            raise ParseError(f"{where}: {err}") from None
    if name is None:
        raise ParseError(f"{source}: missing `graph NAME` header")
    graph = Graph(name, tuple(inputs), tuple(nodes), outputs, updates)
    verify(graph)
    return graph
