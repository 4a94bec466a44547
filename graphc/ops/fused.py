"""The `fused` op: one kernel's worth of primitive ops, kept as a nested body graph.

Input: nothing (imported for its side effect). Output: the registered OpDef. A fused node's
`body` attribute is a Graph whose inputs are the node's operands (same values) and whose outputs
are the node's outputs (same values); it prints as `%h = fused[add, relu](%mm, %b)` followed by
the indented body, and the interpreter runs it by interpreting the body.
"""
from __future__ import annotations

from graphc.errors import ShapeError
from graphc.interpret import interpret
from graphc.ops.registry import NOT_DIFFERENTIABLE, REQUIRED, OpDef, register

KERNEL_KINDS = ("loop", "reduce", "matmul")


def _fused_rule(types, attrs):
    body = attrs["body"]
    if attrs["kind"] not in KERNEL_KINDS:
        raise ShapeError(f"fused: kind {attrs['kind']!r} is not one of {KERNEL_KINDS}")
    expected = [i.value.type for i in body.inputs]
    if list(types) != expected:
        raise ShapeError(f"fused: operand types {[str(t) for t in types]} differ from the body's "
                         f"inputs {[str(t) for t in expected]}")
    return [v.type for v in body.outputs.values()]


def _fused_reference(*arrays, body, kind):
    out = interpret(body, {i.name: a for i, a in zip(body.inputs, arrays)})
    return tuple(out[k] for k in body.outputs)


register(OpDef(
    name="fused", doc="a kernel: its body's primitive ops run in one loop nest", kind="fused",
    infer=_fused_rule, reference=_fused_reference, bprop=NOT_DIFFERENTIABLE, arity=None,
    attrs={"body": REQUIRED, "kind": "loop"}, public=False))
