"""Example models: builders by name, for `graphc compile NAME` and the benchmarks.

Input: a model name. Output: a Graph (with initial params) from `MODELS[name]()`.
"""
from __future__ import annotations

from collections.abc import Callable

import graphc as gc

from .mlp import build_bench_mlp, build_digits_mlp

MODELS: dict[str, Callable[[], gc.Graph]] = {
    "mlp": build_digits_mlp,          # 64-256-10, batch 64: what `graphc train` trains
    "mlp-bench": build_bench_mlp,     # 784-512-512-10, batch 128: the benchmark MLP
}


def build_model(name: str) -> gc.Graph:
    """The graph of a registered model; a GraphcError lists the known names otherwise."""
    if name not in MODELS:
        raise gc.GraphcError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name]()
