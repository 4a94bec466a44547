"""The static SSA graph: immutable values, nodes and graphs.

Input: values, nodes (op name, inputs, attributes, outputs, location) built by the DSL, a parser,
an importer or a pass. Output: a `Graph` in topological order with role-tagged inputs, named
outputs and in-place state updates; use maps are derived on demand and cached.

`Graph.to_text()` (and `str(graph)`) is the text form of graphc.text.printer, which this module
imports; the printer imports nothing of graphc at run time, so the dependency runs one way.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np

from graphc.text.printer import print_graph
from graphc.types import TensorType

ROLES = ("input", "param", "state")


@dataclass(frozen=True)
class Value:
    """An SSA value: a unique name within its graph and a static type."""

    name: str
    type: TensorType

    def __str__(self) -> str:
        return f"%{self.name}"


@dataclass(frozen=True, eq=False)
class Node:
    """One op application. `attrs` is read-only; `loc` is file:line or an ONNX node name."""

    op: str
    inputs: tuple[Value, ...]
    outputs: tuple[Value, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    loc: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    @property
    def output(self) -> Value:
        return self.outputs[0]

    @property
    def body(self) -> Graph | None:
        """The graph a fused kernel runs (its `body` attribute); None for other nodes."""
        body = self.attrs.get("body")
        return body if isinstance(body, Graph) else None


@dataclass(frozen=True)
class GraphInput:
    """A graph input with its role: `input` (fed per run), `param` (trained) or `state`."""

    value: Value
    role: str

    @property
    def name(self) -> str:
        return self.value.name


@dataclass(frozen=True, eq=False)
class Graph:
    """A whole computation.

    `outputs` maps output names to values; `updates` maps a param/state input name to the value
    that replaces it after a run (the training step's in-place writes); `initializers` holds the
    initial values of params and state (not part of the text form).
    """

    name: str
    inputs: tuple[GraphInput, ...]
    nodes: tuple[Node, ...]
    outputs: Mapping[str, Value]
    updates: Mapping[str, Value] = field(default_factory=dict)
    initializers: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "outputs", MappingProxyType(dict(self.outputs)))
        object.__setattr__(self, "updates", MappingProxyType(dict(self.updates)))
        object.__setattr__(self, "initializers", MappingProxyType(dict(self.initializers)))

    @cached_property
    def input_map(self) -> dict[str, GraphInput]:
        return {i.name: i for i in self.inputs}

    def inputs_with_role(self, role: str) -> list[GraphInput]:
        return [i for i in self.inputs if i.role == role]

    @cached_property
    def producers(self) -> dict[Value, Node]:
        """Map from each node-produced value to its node."""
        return {v: n for n in self.nodes for v in n.outputs}

    @cached_property
    def users(self) -> dict[Value, list[Node]]:
        """Map from each value to the nodes that read it, in graph order."""
        out: dict[Value, list[Node]] = {}
        for n in self.nodes:
            for v in dict.fromkeys(n.inputs):
                out.setdefault(v, []).append(n)
        return out

    @cached_property
    def values(self) -> dict[str, Value]:
        """Every value of the graph by name."""
        out = {i.name: i.value for i in self.inputs}
        out.update((v.name, v) for n in self.nodes for v in n.outputs)
        return out

    def to_text(self) -> str:
        return print_graph(self)

    def __str__(self) -> str:
        return self.to_text()

    def replace(self, **changes: Any) -> Graph:
        """A copy of this graph with some fields replaced."""
        fields = {"name": self.name, "inputs": self.inputs, "nodes": self.nodes,
                  "outputs": self.outputs, "updates": self.updates,
                  "initializers": self.initializers}
        fields.update(changes)
        return Graph(**fields)
