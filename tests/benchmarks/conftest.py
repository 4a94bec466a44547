"""Shared fixtures of the MLP benchmarks: the 784-512-512-10 graph at batch 128 and one batch."""
from __future__ import annotations

import numpy as np
import pytest
from graphc.models.mlp import BENCH_SIZES, build_mlp

import graphc as gc

BATCH = 128


@pytest.fixture(scope="module")
def graph() -> gc.Graph:
    return build_mlp(BENCH_SIZES, batch=BATCH, seed=0)


@pytest.fixture(scope="module")
def feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.random((BATCH, BENCH_SIZES[0]), dtype=np.float32),
            "y": rng.integers(0, BENCH_SIZES[-1], BATCH)}
