"""FLOPs of a graph's products: what a forward pass and a training step cost in multiply-adds.

Input: a forward Graph (matmul and conv nodes; composites count as themselves). Output:
`product_flops(node)` (2 x the multiply-adds of one matmul or convolution node, else 0),
`forward_flops(graph)` and `training_flops(graph)`: each product once forward and once more per
operand that depends on a param (its gradient is a product of the same size); an input batch
needs no gradient. Elementwise work is left out.
"""
from __future__ import annotations

import math

from graphc.ir import Graph, Node


def product_flops(node: Node) -> int:
    """2 x multiply-adds of a matmul or convolution node, else 0."""
    out = node.outputs[0].type.shape
    if node.op == "matmul":
        return 2 * math.prod(out) * node.inputs[0].type.shape[-1]
    if node.op.startswith("conv"):
        return 2 * math.prod(out) * math.prod(node.inputs[1].type.shape[1:])
    return 0


def forward_flops(graph: Graph) -> int:
    return sum(product_flops(n) for n in graph.nodes)


def training_flops(graph: Graph) -> int:
    trainable = {i.name for i in graph.inputs_with_role("param")}
    total = 0
    for node in graph.nodes:
        needs = [v.name in trainable for v in node.inputs]
        if any(needs):
            trainable.update(v.name for v in node.outputs)
        total += product_flops(node) * (1 + sum(needs[:2]))
    return total
