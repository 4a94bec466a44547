"""Benchmarks: one SGD training step of every `graphc bench` model (models/bench/frameworks.py)
under graphc and under the hand-written NumPy step (models/mlp.py, models/bench/numpy_steps.py), from
the same weights and batch, with FLOPs per step and graphc's compile time in `extra_info`.

`pytest tests/benchmarks --benchmark-enable --benchmark-json=out.json` times them; in the normal
test run (`--benchmark-disable`) each runs once as a smoke test. No timing asserts. Before the
timing, one graphc step and one NumPy step from the same params must give the same loss and the
same update (so the NumPy competitor computes the same gradients). `graphc bench` is the
side-by-side, separate-process comparison (with PyTorch and JAX); these run in one process.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from graphc.models.bench.frameworks import BENCH_MODELS, compile_graphc, make_batch, make_step, pack
from graphc.models.bench.harness import LR
from graphc.models.bench.numpy_steps import NUMPY_STEPS

from graphc.flops import training_flops

ROUNDS = {"mlp-large": 3, "encoder": 5}  # timed rounds when enabled (else DEFAULT_ROUNDS)
DEFAULT_ROUNDS = 20


@pytest.fixture(scope="module", params=list(BENCH_MODELS))
def case(request):
    """(model, graph, arrays): the model, its graph, and its params plus one batch packed as
    `graphc bench` saves them."""
    model = BENCH_MODELS[request.param]
    graph = model.build()
    return model, graph, pack(graph.initializers, make_batch(graph))


@pytest.fixture(scope="module")
def compiled(case):
    """(graphc training step, compile seconds) of the case's model."""
    model, _, arrays = case
    start = time.perf_counter()
    step = compile_graphc(model, model.batch, arrays, LR)
    return step, time.perf_counter() - start


def feeds_of(arrays) -> dict[str, np.ndarray]:
    return {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("feed:")}


def record(benchmark, model, graph, framework: str) -> None:
    benchmark.group = model.name
    benchmark.extra_info.update(model=model.name, framework=framework, batch=model.batch,
                                flops_per_step=training_flops(graph))


def timed(benchmark, model, step) -> float:
    rounds = ROUNDS.get(model.name, DEFAULT_ROUNDS)
    return float(benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=1))


def test_numpy_step_matches_graphc(case, compiled):
    """One step from graphc's current params: same loss, same update (p_before - p_after)/lr
    in norm: recovering an update of ~1e-5 from float32 params of ~1e-2 costs ~1e-3 relative,
    and sums in another order can flip a relu at its kink, so not elementwise."""
    model, _, arrays = case
    step, _ = compiled
    before = {k: v.copy() for k, v in step.params.items()}
    params = {k: v.copy() for k, v in before.items()}
    numpy_loss = NUMPY_STEPS[model.family](model.settings, params, feeds_of(arrays), LR)()
    assert step.run(feeds_of(arrays)) == pytest.approx(numpy_loss, rel=1e-4)
    for name, old in before.items():
        graphc_grad, numpy_grad = (old - step.params[name]) / LR, (old - params[name]) / LR
        error = np.linalg.norm(numpy_grad - graphc_grad)
        assert error <= 5e-3 * np.linalg.norm(graphc_grad) + 1e-6, name


def test_graphc_step(benchmark, case, compiled):
    model, graph, arrays = case
    step, seconds = compiled
    benchmark.extra_info["compile_seconds"] = seconds
    record(benchmark, model, graph, "graphc")
    feeds = feeds_of(arrays)
    assert np.isfinite(timed(benchmark, model, lambda: step.run(feeds)))


def test_numpy_step(benchmark, case):
    model, graph, arrays = case
    record(benchmark, model, graph, "numpy")
    assert np.isfinite(timed(benchmark, model, make_step("numpy", model, model.batch, arrays, LR)))
