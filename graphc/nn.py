"""Layer helpers for the DSL: `linear` (fan-in initialisation) and `mlp`.

Input: a Tensor, sizes, a name prefix and a NumPy Generator. Output: the layer's output Tensor;
parameters are added to the tensor's builder with names like `fc1.weight`, `fc1.bias`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from graphc.builder import Tensor
from graphc.ops import api as F


def linear(x: Tensor, out_features: int, name: str, rng: np.random.Generator,
           bias: bool = True) -> Tensor:
    """x @ W + b with W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's nn.Linear default)."""
    fan_in = x.shape[-1]
    bound = 1.0 / np.sqrt(fan_in)
    dtype = x.type.np_dtype
    w = x.builder.param(f"{name}.weight",
                        rng.uniform(-bound, bound, (fan_in, out_features)).astype(dtype))
    y = x @ w
    if bias:
        y = y + x.builder.param(f"{name}.bias", rng.uniform(-bound, bound, out_features)
                                .astype(dtype))
    return y


def mlp(x: Tensor, sizes: Sequence[int], rng: np.random.Generator, name: str = "fc",
        activation: Callable[[Tensor], Tensor] = F.relu) -> Tensor:
    """A stack of linear layers with `activation` between them (none after the last)."""
    for i, size in enumerate(sizes):
        x = linear(x, size, f"{name}{i + 1}", rng)
        if i + 1 < len(sizes):
            x = activation(x)
    return x
