"""Precision changes: the same graph computing in float64 (for gradient checks), and the
16-bit floats' matrix products accumulating in f32.

Input: a Graph. Output: `to_float64`: an equivalent Graph where every f32 value, constant,
cast target and initializer is f64; `half_matmul_in_f32`: the graph with every f16/bf16
matmul a cast to f32, an f32 matmul and a cast back.
"""
from __future__ import annotations

import numpy as np
from graphc.passes.rewrite import rewrite

from graphc.ir import Graph, GraphInput, Value
from graphc.ops.registry import get_op
from graphc.types import HALF_DTYPES, TensorType


def _f64(t: TensorType) -> TensorType:
    return t.with_dtype("f64") if t.dtype == "f32" else t


def to_float64(graph: Graph) -> Graph:
    """Needs a verified graph; guarantees no f32 value remains."""
    inputs = tuple(GraphInput(Value(i.name, _f64(i.value.type)), i.role) for i in graph.inputs)
    inits = {k: v.astype(np.float64) if v.dtype == np.float32 else v
             for k, v in graph.initializers.items()}
    retyped = graph.replace(inputs=inputs, initializers=inits,
                            nodes=())  # nodes are rebuilt below against the new inputs
    by_name = {i.name: i.value for i in inputs}

    def rule(b, node, ins):
        attrs = {k: ("f64" if v == "f32" else v) for k, v in node.attrs.items()}
        return b.apply(node.op, ins, **attrs)

    # Rebuild on the retyped inputs: rewrite() maps old input values to themselves, so give it a
    # graph whose inputs and nodes refer to the new input values.
    rename = {i.value: by_name[i.name] for i in graph.inputs}
    nodes = tuple(n.__class__(n.op, tuple(rename.get(v, v) for v in n.inputs), n.outputs,
                              n.attrs, n.loc) for n in graph.nodes)
    outputs = {k: rename.get(v, v) for k, v in graph.outputs.items()}
    updates = {k: rename.get(v, v) for k, v in graph.updates.items()}
    return rewrite(retyped.replace(nodes=nodes, outputs=outputs, updates=updates), rule)


def half_matmul_in_f32(graph: Graph) -> Graph:
    """Needs a graph without composites; guarantees every matmul is f32 or f64 (an f16/bf16
    one reads its operands widened to f32, accumulates in f32 and rounds the result once)."""
    def rule(b, node, ins):
        if get_op(node.op).kind != "matmul" or node.outputs[0].type.dtype not in HALF_DTYPES:
            return None
        wide = [b.apply("cast", [x], to="f32") for x in ins]
        return b.apply("cast", [b.apply(node.op, wide, **node.attrs)],
                       to=node.outputs[0].type.dtype)

    if not any(get_op(n.op).kind == "matmul" and n.outputs[0].type.dtype in HALF_DTYPES
               for n in graph.nodes):
        return graph
    return rewrite(graph, rule)
