"""The training pass: loss + gradients + optimizer update as one graph.

Input: a forward Graph, the name of its scalar loss output and an optimizer (graphc/optim.py).
Output: a Graph whose only output is the loss and whose `updates` write every param and every
optimizer state in place (plus the forward graph's own state updates, such as batch-norm running
statistics); gradients are taken with respect to every `param` input.
"""
from __future__ import annotations

from graphc.passes.autodiff import backprop
from graphc.passes.simplify import dce

from graphc.errors import GraphcError
from graphc.ir import Graph


def training_step(graph: Graph, loss: str, optimizer) -> Graph:
    """Needs a graph with a scalar float output `loss` and at least one param."""
    if loss not in graph.outputs:
        raise GraphcError(f"train step: {loss!r} is not an output of graph {graph.name!r} "
                          f"(outputs: {sorted(graph.outputs)})")
    if graph.outputs[loss].type.shape != ():
        raise GraphcError(f"train step: loss {loss!r} must be a scalar, got "
                          f"{graph.outputs[loss].type}")
    params = [i.name for i in graph.inputs_with_role("param")]
    if not params:
        raise GraphcError(f"train step: graph {graph.name!r} has no params to train")
    b, tensors, grads = backprop(graph, loss, params)
    with b.at("optimizer"):
        updates = optimizer.updates(b, {p: tensors[p] for p in params}, grads)
    # the forward graph's own state updates (e.g. batch-norm running statistics) are kept
    updates = {**{k: tensors[v.name] for k, v in graph.updates.items()}, **updates}
    return dce(b.build(outputs={loss: tensors[graph.outputs[loss].name]}, updates=updates))
