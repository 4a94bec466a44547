"""Benchmark: one SGD training step of the 784-512-512-10 MLP, batch 128, f32, under graphc and
under the hand-written NumPy baseline (models/mlp.py), from the same weights and batch; plus
graphc's compile time. No timing asserts: run with `--benchmark-enable` to time; in the normal
test run each benchmark runs once as a smoke test. The first losses must agree."""
from __future__ import annotations

import time

import numpy as np
import pytest
from graphc.models.mlp import numpy_sgd_step

import graphc as gc

LR = 0.1


def sgd() -> object:
    return gc.optim.SGD(lr=LR, momentum=0.0, weight_decay=0.0)


def first_numpy_loss(graph: gc.Graph, feeds) -> float:
    params = {k: np.array(v) for k, v in graph.initializers.items()}
    return numpy_sgd_step(params, feeds["x"], feeds["y"], lr=LR)


def test_graphc_train_step(benchmark, graph, feeds):
    start = time.perf_counter()
    step = gc.compile_train_step(graph, loss="loss", optimizer=sgd())
    compile_seconds = time.perf_counter() - start
    assert step.run(feeds) == pytest.approx(first_numpy_loss(graph, feeds), rel=1e-4)
    benchmark.extra_info["compile_seconds"] = compile_seconds
    benchmark.extra_info.update({k: v for k, v in step.stats.items()
                                 if isinstance(v, (int, float, str))})
    loss = benchmark(step.run, feeds)
    assert np.isfinite(loss)


def test_numpy_train_step(benchmark, graph, feeds):
    params = {k: np.array(v) for k, v in graph.initializers.items()}
    loss = benchmark(numpy_sgd_step, params, feeds["x"], feeds["y"], LR)
    assert np.isfinite(loss)


def test_graphc_compile_train_step(benchmark, graph):
    """Compile time of the whole training step (may hit graphc's on-disk object cache after
    the first round; the first compile is recorded in test_graphc_train_step's extra_info)."""
    step = benchmark.pedantic(gc.compile_train_step, args=(graph,),
                              kwargs={"loss": "loss", "optimizer": sgd()}, rounds=3, iterations=1)
    assert "kernels" in step.stats
