"""Benchmark: one SGD training step of the 784-512-512-10 MLP (batch 128, f32) with fusion on and
off, from the same weights and batch. Records kernels (before and after fusion), planned, lower
bound and naive bytes in `benchmark.extra_info`. No timing asserts: run with
`--benchmark-enable` to time; in the normal test run each runs once as a smoke test.
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc.compile import Executable
from graphc.pipeline import passes_for

STATS = ("kernels", "kernels_unfused", "planned_bytes", "lower_bound_bytes", "naive_bytes")


@pytest.mark.parametrize("fusion", [True, False], ids=["fused", "unfused"])
def test_mlp_train_step_fusion(benchmark, graph, feeds, fusion):
    step = Executable(graph, passes_for(train=("loss", gc.optim.SGD(lr=0.1)), fusion=fusion))
    benchmark.extra_info.update({"fusion": fusion, **{k: step.stats[k] for k in STATS}})
    out = benchmark(step.run, feeds)
    assert np.isfinite(out["loss"])
