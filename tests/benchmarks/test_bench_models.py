"""Benchmarks: one SGD training step of every `graphc bench` model (models/bench_frameworks.py)
under graphc and under the model's hand-written NumPy baseline, from the same weights and batch,
with FLOPs per step and graphc's compile time in `extra_info`.

`pytest tests/benchmarks --benchmark-enable --benchmark-json=out.json` times them; in the normal
test run (`--benchmark-disable`) each runs once as a smoke test. No timing asserts. The first
graphc and NumPy losses must agree. `graphc bench` is the side-by-side, separate-process
comparison (with PyTorch and JAX); these are the same steps in one process.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from graphc.bench import LR, training_flops
from models.bench_frameworks import BENCH_MODELS, compile_graphc, make_batch, make_step

ROUNDS = {"mlp-large": 3}  # timed rounds per benchmark when enabled; others use DEFAULT_ROUNDS
DEFAULT_ROUNDS = 20


@pytest.fixture(scope="module", params=list(BENCH_MODELS))
def case(request):
    """(model, arrays): the model, its initial params and one batch, as `graphc bench` saves."""
    model = BENCH_MODELS[request.param]
    graph = model.build()
    return model, graph, {**graph.initializers, **make_batch(graph)}


def record(benchmark, model, graph, framework: str) -> None:
    benchmark.group = model.name
    benchmark.extra_info.update(model=model.name, framework=framework, batch=model.batch,
                                flops_per_step=training_flops(graph))


def timed(benchmark, model, step) -> float:
    rounds = ROUNDS.get(model.name, DEFAULT_ROUNDS)
    loss = benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=1)
    return float(loss)


def test_graphc_step(benchmark, case):
    model, graph, arrays = case
    start = time.perf_counter()
    compiled = compile_graphc(model, model.batch, arrays, LR)
    benchmark.extra_info["compile_seconds"] = time.perf_counter() - start
    record(benchmark, model, graph, "graphc")
    feeds = {"x": arrays["x"], "y": arrays["y"]}
    first = compiled.run(feeds)
    numpy_first = float(make_step("numpy", model, model.batch, arrays, LR)())
    assert first == pytest.approx(numpy_first, rel=1e-3)
    assert np.isfinite(timed(benchmark, model, lambda: compiled.run(feeds)))


def test_numpy_step(benchmark, case):
    model, graph, arrays = case
    record(benchmark, model, graph, "numpy")
    assert np.isfinite(timed(benchmark, model, make_step("numpy", model, model.batch, arrays, LR)))
