"""Reverse-mode autodiff, symbol to symbol (algorithms 6.5 and 6.6 of the backprop seed).

Input: a Graph, the name of the value to differentiate and the names of the values to
differentiate with respect to. Output: the same graph extended with gradient nodes built from
each op's bprop (ordinary graph ops, so the result can be differentiated again).
"""
from __future__ import annotations

from graphc.passes.simplify import dce

from graphc.builder import GraphBuilder, Tensor
from graphc.errors import GradientError, GraphcError
from graphc.ir import Graph, Node, Value
from graphc.ops import api as F
from graphc.ops.registry import get_op
from graphc.text.printer import format_node


def _on_path(graph: Graph, output: Value, wrt: list[Value]) -> tuple[list[Node], set[Value]]:
    """Nodes (and float values) lying on a path from some wrt value to `output`."""
    depends = {v for v in wrt if v.type.is_float}
    for node in graph.nodes:
        if any(v in depends for v in node.inputs):
            depends.update(v for v in node.outputs if v.type.is_float)
    needed = {output}
    path: list[Node] = []
    for node in reversed(graph.nodes):
        if any(v in needed and v in depends for v in node.outputs):
            path.append(node)
            needed.update(node.inputs)
    values = {v for v in needed if v in depends} | ({output} if output in depends else set())
    return path[::-1], values


def unbroadcast(g: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum `g` over the axes NumPy broadcasting added or stretched, giving `shape`."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = [i for i in range(g.ndim) if i < lead or (shape[i - lead] == 1 and g.shape[i] != 1)]
    return F.reshape(F.sum(g, axes, keepdims=True), shape) if axes else F.reshape(g, shape)


def _missing_bprops(path: list[Node]) -> None:
    missing = [n for n in path if not get_op(n.op).differentiable]
    if missing:
        lines = [f"{n.loc or '<no location>'}: no gradient for {n.op}\n    {format_node(n, False)}"
                 for n in missing]
        raise GradientError(f"cannot differentiate {len(missing)} node(s):\n" + "\n".join(lines))


def backprop(graph: Graph, output: str, wrt: list[str]) -> tuple[GraphBuilder, dict[str, Tensor],
                                                                   dict[str, Tensor]]:
    """Algorithm 6.5: returns a builder holding `graph` plus gradient nodes, the tensors of the
    original values, and {wrt name: gradient tensor} (zeros where the output does not depend on
    it). A non-scalar output is differentiated as the sum of its elements."""
    if output not in graph.outputs and output not in graph.values:
        raise GraphcError(f"grad: {output!r} is not an output or value of graph {graph.name!r}; "
                          f"outputs are {sorted(graph.outputs)}")
    unknown = [w for w in wrt if w not in graph.values]
    if unknown:
        raise GraphcError(f"grad: no value named {unknown} in graph {graph.name!r}")
    out_value = graph.outputs.get(output) or graph.values[output]
    if not out_value.type.is_float:
        raise GraphcError(f"grad: output {output!r} has non-float type {out_value.type}")
    wrt_values = [graph.values[w] for w in wrt]
    ints = [f"{v.name}: {v.type}" for v in wrt_values if not v.type.is_float]
    if ints:
        raise GraphcError(f"grad: cannot differentiate with respect to non-float {ints}")
    path, path_values = _on_path(graph, out_value, wrt_values)
    _missing_bprops(path)

    b, tensors = GraphBuilder.extend(graph)
    producer = graph.producers.get(out_value)
    with b.at(producer.loc if producer is not None else f"d{output}"):
        seed = F.broadcast_to(F.constant(b, 1.0, out_value.type.dtype), out_value.type.shape)
    grad_table: dict[Value, Tensor] = {out_value: seed}
    for node in reversed(path):  # algorithm 6.6, visiting consumers before producers
        if node.output not in grad_table:
            continue
        op = get_op(node.op)
        with b.at(node.loc):
            ins = [tensors[v.name] for v in node.inputs]
            grads = op.bprop(*ins, tensors[node.output.name], grad_table[node.output],
                             **node.attrs)
            for value, g in zip(node.inputs, grads):
                if g is None or value not in path_values:
                    continue
                g = unbroadcast(g, value.type.shape)
                grad_table[value] = grad_table[value] + g if value in grad_table else g
    result = {}
    for name, value in zip(wrt, wrt_values):
        if value in grad_table:
            result[name] = grad_table[value]
        else:
            zero = F.constant(b, 0.0, value.type.dtype)
            result[name] = F.broadcast_to(zero, value.type.shape)
    return b, tensors, result


def grad(graph: Graph, output: str, wrt: list[str]) -> Graph:
    """Needs a verified graph; returns a graph with the same inputs and one output per name in
    `wrt`, named like it, holding d output / d name."""
    b, _, grads = backprop(graph, output, list(wrt))
    return dce(b.build(outputs=grads))


def value_and_grad(graph: Graph, output: str, wrt: list[str]) -> Graph:
    """Like `grad`, plus the differentiated value itself under its own name; gradients are
    named `grad:NAME`."""
    b, tensors, grads = backprop(graph, output, list(wrt))
    value = tensors[(graph.outputs.get(output) or graph.values[output]).name]
    outs = {output: value, **{f"grad:{k}": v for k, v in grads.items()}}
    return dce(b.build(outputs=outs))
