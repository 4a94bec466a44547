"""Building graphs from Python: `GraphBuilder` and the `Tensor` handles it returns.

Input: calls such as `b.input(...)`, `b.param(...)`, operators on tensors and DSL functions.
Output: a verified `Graph` from `b.build(outputs=...)`. Every node records the user's file:line;
shape errors are raised at the offending line and show the node.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from graphc.errors import GraphcError, ShapeError, located
from graphc.ir import Graph, GraphInput, Node, Value
from graphc.ops.registry import get_op, normalize_attrs
from graphc.types import FLOAT_DTYPES, INT_DTYPES, TensorType, dtype_name
from graphc.verify import verify as verify_graph

_PACKAGE_DIRS = tuple(
    os.path.dirname(os.path.abspath(__file__)).rsplit(os.sep, 1)[0] + os.sep + pkg + os.sep
    for pkg in ("graphc", "passes", "runtime")
)


def user_location() -> str:
    """file:line of the innermost stack frame outside graphc's own packages."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIRS):
            return f"{os.path.relpath(path) if not path.startswith('..') else path}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def literal_values(array: np.ndarray) -> tuple:
    """Flat Python literals for an array: floats use the shortest text that round-trips in the
    array's own dtype (0.1, not 0.10000000149011612, for f32)."""
    if array.dtype.kind == "f" or dtype_name(array.dtype) in FLOAT_DTYPES:  # bf16: kind "V"
        return tuple(float(str(v)) for v in array.ravel())
    return tuple(array.ravel().tolist())


class Tensor:
    """A handle on a value inside a builder; Python operators build nodes with NumPy broadcasting."""

    __array_priority__ = 1000  # make `ndarray @ Tensor` defer to Tensor.__rmatmul__

    def __init__(self, builder: GraphBuilder, value: Value):
        self.builder = builder
        self.value = value

    @property
    def type(self) -> TensorType:
        return self.value.type

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.type.shape

    @property
    def dtype(self) -> str:
        return self.value.type.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def name(self) -> str:
        return self.value.name

    @property
    def T(self) -> Tensor:
        return self.builder.apply("transpose", [self], perm=tuple(reversed(range(self.ndim))))

    def __repr__(self) -> str:
        return f"Tensor(%{self.value.name}: {self.value.type})"

    def _bin(self, op: str, other: Any, reverse: bool = False) -> Tensor:
        other = self.builder.lift(other, like=self)
        return self.builder.apply(op, [other, self] if reverse else [self, other])

    def __add__(self, o): return self._bin("add", o)
    def __radd__(self, o): return self._bin("add", o, True)
    def __sub__(self, o): return self._bin("sub", o)
    def __rsub__(self, o): return self._bin("sub", o, True)
    def __mul__(self, o): return self._bin("mul", o)
    def __rmul__(self, o): return self._bin("mul", o, True)
    def __truediv__(self, o): return self._bin("div", o)
    def __rtruediv__(self, o): return self._bin("div", o, True)
    def __pow__(self, o): return self._bin("pow", o)
    def __rpow__(self, o): return self._bin("pow", o, True)
    def __matmul__(self, o): return self._bin("matmul", o)
    def __rmatmul__(self, o): return self._bin("matmul", o, True)
    def __lt__(self, o): return self._bin("less", o)
    def __le__(self, o): return self._bin("less_equal", o)
    def __gt__(self, o): return self._bin("greater", o)
    def __ge__(self, o): return self._bin("greater_equal", o)
    def __neg__(self): return self.builder.apply("neg", [self])
    def __pos__(self): return self
    __hash__ = object.__hash__

    def __bool__(self):
        raise GraphcError("a graphc Tensor has no truth value at build time; use gc.where")


class GraphBuilder:
    """Accumulates inputs and nodes; `build` returns an immutable, verified Graph."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[GraphInput] = []
        self.nodes: list[Node] = []
        self.initializers: dict[str, np.ndarray] = {}
        self._names: set[str] = set()
        self._counter = 0
        self._loc: str | None = None
        self.producer: dict[Value, Node] = {}
        self.updates: dict[str, Tensor] = {}  # state updates registered by layers (batch norm)

    def add_node(self, node: Node) -> None:
        """Append an already-built node (used by passes that copy nodes)."""
        self.nodes.append(node)
        self.producer.update((v, node) for v in node.outputs)

    # --- naming and locations -------------------------------------------------------------
    def fresh_name(self, hint: str = "v") -> str:
        while True:
            name = f"{hint}{self._counter}"
            self._counter += 1
            if name not in self._names:
                self._names.add(name)
                return name

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise GraphcError(f"{user_location()}: name {name!r} is already used in graph "
                              f"{self.name!r}")
        self._names.add(name)
        return name

    @contextlib.contextmanager
    def at(self, loc: str) -> Iterator[None]:
        """Attribute nodes built inside the block to `loc` (used by passes such as autodiff)."""
        saved, self._loc = self._loc, loc
        try:
            yield
        finally:
            self._loc = saved

    def location(self) -> str:
        return self._loc if self._loc is not None else user_location()

    # --- graph inputs -------------------------------------------------------------------
    def _add_input(self, name: str, ttype: TensorType, role: str) -> Tensor:
        value = Value(self._claim(name), ttype)
        self.inputs.append(GraphInput(value, role))
        return Tensor(self, value)

    def input(self, name: str, shape: tuple[int, ...], dtype: str = "f32") -> Tensor:
        """A value fed on every run."""
        return self._add_input(name, TensorType(tuple(shape), dtype), "input")

    def param(self, name: str, init: np.ndarray, dtype: str | None = None) -> Tensor:
        """A trainable parameter, carrying its initial value."""
        return self._init_input(name, init, dtype, "param")

    def state(self, name: str, init: np.ndarray, dtype: str | None = None) -> Tensor:
        """Persistent non-trained state (optimizer moments, step counters)."""
        return self._init_input(name, init, dtype, "state")

    def _init_input(self, name: str, init: Any, dtype: str | None, role: str) -> Tensor:
        array = np.asarray(init)
        dt = dtype_name(dtype or array.dtype)
        array = np.array(array, dtype=TensorType((), dt).np_dtype, order="C", copy=True)
        tensor = self._add_input(name, TensorType(array.shape, dt), role)
        self.initializers[name] = array
        return tensor

    def update(self, name: str, value: Tensor) -> None:
        """Register the new value of param/state `name` after a run; `build` includes it."""
        if name not in {i.name for i in self.inputs if i.role != "input"}:
            raise GraphcError(f"{self.location()}: {name!r} is not a param or state of "
                              f"graph {self.name!r}")
        self.updates[name] = value

    # --- nodes ---------------------------------------------------------------------------
    def tensor(self, value: Value) -> Tensor:
        return Tensor(self, value)

    def lift(self, x: Any, like: Tensor | None = None) -> Tensor:
        """Turn a Python scalar or array into a constant node (dtype of `like` for scalars)."""
        if isinstance(x, Tensor):
            if x.builder is not self:
                raise GraphcError(f"{self.location()}: tensor %{x.name} belongs to another builder")
            return x
        array = np.asarray(x)
        if like is not None and (array.ndim == 0 or (array.dtype.kind == "f" and like.type.is_float)):
            dt = like.dtype if array.dtype.kind != "b" else "bool"
        else:
            dt = dtype_name(array.dtype)
        converted = array.astype(TensorType((), dt).np_dtype)
        if array.dtype.kind in "fiu" and (dt in INT_DTYPES or dt == "bool") and \
                not np.array_equal(converted, array, equal_nan=True):
            raise ShapeError(located(f"the constant {x!r} is not exactly representable in the "
                                     f"{dt} tensor %{like.name}; insert gc.cast", self.location()))
        array = converted
        return self.apply("constant", [], value=literal_values(array), shape=array.shape, dtype=dt)

    def apply(self, op_name: str, inputs: list[Any], **attrs: Any) -> Any:
        """Add one node; returns its Tensor (or a tuple of Tensors for multi-output ops)."""
        op = get_op(op_name)
        tensors = [self.lift(x) for x in inputs]
        loc = self.location()
        try:
            attrs = normalize_attrs(op, attrs)
            if op.arity is not None and len(tensors) != op.arity:
                raise ShapeError(f"{op_name} takes {op.arity} input(s), got {len(tensors)}")
            types = op.infer([t.type for t in tensors], attrs)
        except GraphcError as err:
            shown = f"{op_name}({', '.join(f'%{t.name}: {t.type}' for t in tensors)})"
            raise ShapeError(located(str(err), loc, shown)) from None
        outputs = tuple(Value(self.fresh_name(), t) for t in types)
        self.add_node(Node(op_name, tuple(t.value for t in tensors), outputs, attrs, loc))
        result = tuple(Tensor(self, v) for v in outputs)
        return result[0] if len(result) == 1 else result

    def build(self, outputs: Mapping[str, Tensor] | Tensor,
              updates: Mapping[str, Tensor] | None = None, verify: bool = True) -> Graph:
        """Freeze the builder into a Graph with the given named outputs."""
        if isinstance(outputs, Tensor):
            outputs = {"out": outputs}
        graph = Graph(
            name=self.name,
            inputs=tuple(self.inputs),
            nodes=tuple(self.nodes),
            outputs={k: self.lift(v).value for k, v in outputs.items()},
            updates={k: self.lift(v).value for k, v in {**self.updates, **(updates or {})}.items()},
            initializers=dict(self.initializers),
        )
        if verify:
            verify_graph(graph)
        return graph

    @classmethod
    def extend(cls, graph: Graph) -> tuple[GraphBuilder, dict[str, Tensor]]:
        """A builder that starts from `graph` (inputs, nodes, initializers); returns it and a
        map from value name to Tensor, so a pass can append nodes."""
        b = cls(graph.name)
        b.inputs = list(graph.inputs)
        for node in graph.nodes:
            b.add_node(node)
        b.initializers = dict(graph.initializers)
        b._names = set(graph.values)
        return b, {name: Tensor(b, v) for name, v in graph.values.items()}
