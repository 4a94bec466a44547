"""The parser of the text form: text in, a verified Graph out.

Input: the text printer.py writes (a `graph NAME` header, role-tagged inputs, one node per line
with a fused kernel's body indented under it, then `output` and `update` lines; `//` lines are
comments) and the name of its source. Output: the Graph, verified, whose printed text is the
text read. Parsed params carry no initializers.

Every error names `source:line` of the offending line: parse errors from the line being read,
and verifier errors through the map from each parsed node, input, output and update to its line
(a VerifyError says which part of the graph it concerns, `VerifyError.subject`). The line is not
stored in the node's location, which keeps the location the text itself gave (`# mlp.py:12`),
so the round trip stays exact.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from graphc.errors import GraphcError, ParseError, VerifyError
from graphc.ir import ROLES, Graph, GraphInput, Node, Value
from graphc.ops.registry import get_op, normalize_attrs
from graphc.types import TensorType
from graphc.verify import verify

_NODE = re.compile(r"(?P<outs>%.+?) = (?P<op>\w+)(?:\[[^\]]*\])?\((?P<args>[^)]*)\)"
                   r"(?: \{(?P<attrs>.*)\})?(?:  # (?P<loc>.*))?$")
_OUT = re.compile(r"%([^\s,(){}=]+?): (\w+\[[\d,]*\])")


@dataclass(frozen=True)
class Line:
    """One meaningful line of the text: its indentation, `source:n` and its stripped text."""

    indent: int
    where: str
    text: str


@dataclass
class _Parsed:
    """What the lines said so far, and the line each part of the graph came from."""

    inputs: list[GraphInput] = field(default_factory=list)
    values: dict[str, Value] = field(default_factory=dict)
    node_lines: list[Line] = field(default_factory=list)
    results: list[tuple[str, str, str, str]] = field(default_factory=list)
    line_of: dict[object, str] = field(default_factory=dict)


def parse(text: str, source: str = "<text>") -> Graph:
    """Parse the text form back into a Graph (verified); errors name `source:line`."""
    lines = [Line(len(raw) - len(raw.lstrip()), f"{source}:{n}", raw.strip())
             for n, raw in enumerate(text.splitlines(), 1)
             if raw.strip() and not raw.strip().startswith("//")]
    if not lines or not lines[0].text.startswith("graph"):
        raise ParseError(f"{source}: missing `graph NAME` header")
    parsed = _Parsed()
    for line in lines[1:]:
        _read_line(line, parsed)
    nodes = _parse_nodes(parsed.node_lines, parsed.values, parsed.line_of)
    outputs: dict[str, Value] = {}
    updates: dict[str, Value] = {}
    for kind, key, ref, where in parsed.results:
        (outputs if kind == "output" else updates)[key] = _lookup(parsed.values, ref, where)
        parsed.line_of[kind, key] = where
    name = lines[0].text.partition(" ")[2].strip()
    graph = Graph(name, tuple(parsed.inputs), tuple(nodes), outputs, updates)
    try:
        verify(graph)
    except VerifyError as err:
        where = parsed.line_of.get(err.subject, source)
        raise VerifyError(f"{where}: {err}", subject=err.subject) from None
    return graph


def _read_line(line: Line, parsed: _Parsed) -> None:
    """An input, output or update line, or a node line kept for `_parse_nodes`."""
    head, _, rest = line.text.partition(" ")
    if head in ROLES:
        if parsed.node_lines:
            raise ParseError(f"{line.where}: inputs must come before the nodes")
        match = _OUT.fullmatch(rest.strip())
        if not match:
            raise ParseError(f"{line.where}: expected `{head} %name: type`, got {line.text!r}")
        try:
            value = Value(match.group(1), TensorType.parse(match.group(2)))
        except GraphcError as err:
            raise ParseError(f"{line.where}: {err}") from None
        parsed.values[value.name] = value
        parsed.inputs.append(GraphInput(value, head))
        parsed.line_of["input", value.name] = line.where
    elif head in ("output", "update"):
        key, _, ref = rest.partition(" = ")
        parsed.results.append((head, key.strip().removeprefix("%"), ref, line.where))
    else:
        parsed.node_lines.append(line)


def _parse_attrs(text: str | None, where: str) -> dict:
    if not text:
        return {}
    try:
        tree = ast.parse(f"dict({text})", mode="eval")
        return {kw.arg: ast.literal_eval(kw.value) for kw in tree.body.keywords}
    except (SyntaxError, ValueError) as err:
        raise ParseError(f"{where}: bad attributes {{{text}}}: {err}") from None


def _lookup(values: dict[str, Value], ref: str, where: str) -> Value:
    ref = ref.strip()
    if not ref.startswith("%") or ref[1:] not in values:
        raise ParseError(f"{where}: unknown value {ref!r}")
    return values[ref[1:]]


def _parse_nodes(lines: list[Line], values: dict[str, Value],
                 line_of: dict[object, str]) -> list[Node]:
    """Node lines at one indentation; more-indented lines after a node form its body graph."""
    nodes, i = [], 0
    while i < len(lines):
        j = i + 1
        while j < len(lines) and lines[j].indent > lines[i].indent:
            j += 1
        try:
            node = _parse_node(lines[i], lines[i + 1:j], values, line_of)
        except ParseError:
            raise
        except GraphcError as err:
            raise ParseError(f"{lines[i].where}: {err}") from None
        for v in node.outputs:
            if v.name in values:
                raise ParseError(f"{lines[i].where}: value %{v.name} is defined twice")
            values[v.name] = v
        line_of[node] = lines[i].where
        nodes.append(node)
        i = j
    return nodes


def _parse_node(line: Line, body: list[Line], values: dict[str, Value],
                line_of: dict[object, str]) -> Node:
    """One node from its line (and, for an op with a body graph, the lines indented under it)."""
    match = _NODE.match(line.text)
    if match is None:
        raise ParseError(f"{line.where}: cannot parse line {line.text!r}")
    op = get_op(match.group("op"))
    outs = [Value(o, TensorType.parse(t)) for o, t in _OUT.findall(match.group("outs"))]
    args = [_lookup(values, a, line.where) for a in match.group("args").split(",") if a.strip()]
    attrs = _parse_attrs(match.group("attrs"), line.where)
    if "body" in op.attrs:
        body_nodes = _parse_nodes(body, {v.name: v for v in args}, line_of)
        attrs["body"] = Graph(op.name, tuple(GraphInput(v, "input") for v in args),
                              tuple(body_nodes), {v.name: v for v in outs})
    elif body:
        raise ParseError(f"{body[0].where}: unexpected indented line")
    return Node(op.name, tuple(args), tuple(outs), normalize_attrs(op, attrs),
                match.group("loc") or "")
