"""Example models: builders by name, for `graphc compile NAME` and the benchmarks.

Input: a model name. Output: a Graph (with initial params) from `MODELS[name]()`.
"""
from __future__ import annotations

from collections.abc import Callable

from graphc.models.cnn import build_digits_cnn, build_mnist_cnn
from graphc.models.mlp import build_bench_mlp, build_digits_mlp
from graphc.models.transformer import build_default_transformer

import graphc as gc

MODELS: dict[str, Callable[[], gc.Graph]] = {
    "mlp": build_digits_mlp,          # 64-256-10, batch 64: what `graphc train` trains
    "mlp-bench": build_bench_mlp,     # 784-512-512-10, batch 128: the benchmark MLP
    "cnn": build_digits_cnn,          # conv-relu-pool x2 + fc on 1x8x8 digits, batch 64
    "cnn-28": build_mnist_cnn,        # LeNet-5-like on 1x28x28, batch 64
    "transformer": build_default_transformer,  # one encoder block, majority-token task
}


def build_model(name: str) -> gc.Graph:
    """The graph of a registered model; a GraphcError lists the known names otherwise."""
    if name not in MODELS:
        raise gc.GraphcError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name]()
