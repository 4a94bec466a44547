"""Patterns over graph values, and tables of rewrite rules written with them.

Input: rules `(pattern, replace)` such as `(Pat.var("x") * 1, lambda x: x)`: a pattern is built
from variables (`Pat.var`, bind any tensor by name), constants (`Pat.const`, a constant tensor
whose elements all equal a value), op patterns (`Pat("reshape", x)` or Python operators), and
`replace` receives the bound tensors as keyword arguments.
Output: a `PatternTable`, which is a rule for the rewrite driver (`graphc.passes.rewrite`): for a
node it returns the first replacement whose pattern matches and whose type is the node's, else
None. Commutative ops match their operands in either order, here and nowhere else.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from graphc.builder import GraphBuilder, Tensor
from graphc.ir import Node, Value

# Ops whose value does not depend on the order of their two operands. The op records hold no such
# fact yet, so it lives here, beside the one matcher that uses it.
COMMUTATIVE = frozenset({"add", "mul", "maximum", "minimum", "equal", "not_equal"})

Bindings = dict[str, Tensor]
AttrTest = Callable[[Mapping[str, Any]], bool]
Replacement = Callable[..., "Tensor | tuple | None"]


class Pat:
    """A pattern: an op applied to sub-patterns, a named variable, or a constant value."""

    __slots__ = ("attrs", "name", "op", "srcs", "value")

    def __init__(self, op: str, *srcs: Pat | float, attrs: AttrTest | None = None):
        self.op: str | None = op
        self.srcs: tuple[Pat, ...] = tuple(as_pattern(s) for s in srcs)
        self.name: str | None = None
        self.value: float | None = None
        self.attrs = attrs  # a test of the node's attributes, e.g. an identity permutation

    @classmethod
    def var(cls, name: str) -> Pat:
        """Matches any tensor and binds it to `name` (a name used twice must bind one value)."""
        pat = cls.__new__(cls)
        pat.op, pat.srcs, pat.name, pat.value, pat.attrs = None, (), name, None, None
        return pat

    @classmethod
    def const(cls, value: float) -> Pat:
        """Matches a constant tensor whose elements all equal `value`."""
        pat = cls.__new__(cls)
        pat.op, pat.srcs, pat.name, pat.value, pat.attrs = None, (), None, value, None
        return pat

    def __repr__(self) -> str:
        if self.name is not None:
            return f"Pat.var({self.name!r})"
        if self.op is None:
            return f"Pat.const({self.value!r})"
        return f"Pat({self.op!r}, {', '.join(map(repr, self.srcs))})"

    def __add__(self, other: Pat | float) -> Pat: return Pat("add", self, other)
    def __radd__(self, other: Pat | float) -> Pat: return Pat("add", other, self)
    def __sub__(self, other: Pat | float) -> Pat: return Pat("sub", self, other)
    def __rsub__(self, other: Pat | float) -> Pat: return Pat("sub", other, self)
    def __mul__(self, other: Pat | float) -> Pat: return Pat("mul", self, other)
    def __rmul__(self, other: Pat | float) -> Pat: return Pat("mul", other, self)
    def __truediv__(self, other: Pat | float) -> Pat: return Pat("div", self, other)
    def __rtruediv__(self, other: Pat | float) -> Pat: return Pat("div", other, self)
    def __neg__(self) -> Pat: return Pat("neg", self)


def as_pattern(x: Pat | float) -> Pat:
    """A pattern as is; a Python number as the constant pattern of that value."""
    return x if isinstance(x, Pat) else Pat.const(x)


def constant_value(producer: Node | None) -> Any:
    """The one element value of a constant node whose elements are all equal, else None."""
    if producer is None or producer.op != "constant" or not producer.attrs["value"]:
        return None
    values = set(producer.attrs["value"])
    return values.pop() if len(values) == 1 else None


def match_tensor(pat: Pat, t: Tensor, producers: Mapping[Value, Node],
                 bound: Bindings) -> Iterator[Bindings]:
    """Every way `pat` matches the tensor `t` (extending `bound`); nothing if it does not."""
    if pat.name is not None:
        if pat.name not in bound:
            yield {**bound, pat.name: t}
        elif bound[pat.name].value == t.value:
            yield bound
        return
    producer = producers.get(t.value)
    if pat.op is None:
        value = constant_value(producer)
        if value is not None and value == pat.value:
            yield bound
        return
    if producer is not None and len(producer.outputs) == 1:
        inputs = [Tensor(t.builder, v) for v in producer.inputs]
        yield from match_op(pat, producer, inputs, producers, bound)


def match_op(pat: Pat, node: Node, inputs: list[Tensor], producers: Mapping[Value, Node],
             bound: Bindings) -> Iterator[Bindings]:
    """Every way the op pattern `pat` matches `node` applied to `inputs` (both operand orders
    for a commutative op)."""
    if node.op != pat.op or len(inputs) != len(pat.srcs):
        return
    if pat.attrs is not None and not pat.attrs(node.attrs):
        return
    orders = [inputs]
    if node.op in COMMUTATIVE and len(inputs) == 2 and inputs[0].value != inputs[1].value:
        orders.append(inputs[::-1])
    for operands in orders:
        yield from _match_all(pat.srcs, operands, producers, bound)


def _match_all(pats: tuple[Pat, ...], tensors: list[Tensor], producers: Mapping[Value, Node],
               bound: Bindings) -> Iterator[Bindings]:
    if not pats:
        yield bound
        return
    for partial in match_tensor(pats[0], tensors[0], producers, bound):
        yield from _match_all(pats[1:], tensors[1:], producers, partial)


def _same_types(node: Node, result: Tensor | tuple) -> bool:
    results = result if isinstance(result, tuple) else (result,)
    return len(results) == len(node.outputs) and \
        all(r.type == v.type for r, v in zip(results, node.outputs))


class PatternTable:
    """Rules `(op pattern, replace)`, tried in order; a rewrite rule for `rewrite`."""

    def __init__(self, rules: list[tuple[Pat, Replacement]]):
        self.rules = rules
        self.by_op: dict[str, list[tuple[Pat, Replacement]]] = {}
        for pat, replace in rules:
            if pat.op is None:
                raise ValueError(f"a rule's pattern must be an op pattern, not {pat!r}")
            self.by_op.setdefault(pat.op, []).append((pat, replace))

    def __call__(self, b: GraphBuilder, node: Node, inputs: list[Tensor]) -> Tensor | tuple | None:
        """The first replacement for `node` (with rewritten `inputs`) that has the node's types;
        a replacement of another type (x * ones that broadcasts x) does not apply."""
        for pat, replace in self.by_op.get(node.op, ()):
            for bound in match_op(pat, node, inputs, b.producer, {}):
                result = replace(**bound)
                if result is not None and _same_types(node, result):
                    return result
        return None
