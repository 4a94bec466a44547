"""Losses for imported models: `with_loss(graph, kind, output, labels) -> Graph`.

Input: a forward graph (e.g. from `load_onnx`) with an output to train, a loss kind and the name
of the labels input to add. Output: the same graph plus a `labels` input and a scalar output
`"loss"` (mean over the batch), so `gc.compile_train_step(g, loss="loss", ...)` trains it:

- `"cross_entropy"`: the output is [batch, classes] logits; labels are i64 class indices [batch].
- `"mse"`: labels have the output's type; the loss is the mean of the squared error.
"""
from __future__ import annotations

from graphc.builder import GraphBuilder
from graphc.errors import GraphcError
from graphc.ir import Graph
from graphc.ops import api as F

LOSSES = ("cross_entropy", "mse")


def with_loss(graph: Graph, loss: str = "cross_entropy", output: str = "logits",
              labels: str = "labels") -> Graph:
    """Add a labels input and a scalar "loss" output computed from `output`."""
    if loss not in LOSSES:
        raise GraphcError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}")
    if output not in graph.outputs:
        raise GraphcError(f"graph {graph.name!r} has no output {output!r} to put a loss on; "
                          f"its outputs are {sorted(graph.outputs)} (name the logits output)")
    if "loss" in graph.outputs:
        raise GraphcError(f"graph {graph.name!r} already has an output named 'loss'")
    b, tensors = GraphBuilder.extend(graph)
    y = tensors[graph.outputs[output].name]
    if labels in tensors:
        raise GraphcError(f"graph {graph.name!r} already has a value named {labels!r}; pick "
                          f"another labels name")
    with b.at(f"with_loss:{loss}"):
        if loss == "cross_entropy":
            if y.ndim != 2 or not y.type.is_float:
                raise GraphcError(f"cross_entropy needs [batch, classes] float logits; output "
                                  f"{output!r} is {y.type}")
            target = b.input(labels, (y.shape[0],), "i64")
            value = F.softmax_cross_entropy(y, target)
        else:
            if not y.type.is_float:
                raise GraphcError(f"mse needs a float output; {output!r} is {y.type}")
            target = b.input(labels, y.shape, y.dtype)
            value = F.mse(y, target)
    outputs = {k: tensors[v.name] for k, v in graph.outputs.items()}
    outputs["loss"] = value
    updates = {k: tensors[v.name] for k, v in graph.updates.items()}
    return b.build(outputs=outputs, updates=updates)
