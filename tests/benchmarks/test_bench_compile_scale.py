"""Benchmarks: cold compile time against graph size (issue 16: near-linear, 4k/1k <= 5).

Input: elementwise chains of 250, 1000 and 4000 ops (1k, 4k and 16k nodes with their constants)
with the disk cache off. Output: `--benchmark-enable` times `gc.compile` of each; the normal
run compiles each once. No timing asserts.
"""
from __future__ import annotations

import pytest

import graphc as gc
from tests.test_reliability import _chain


@pytest.mark.parametrize("ops", [250, 1000, 4000])
def test_compile_chain(benchmark, monkeypatch, ops):
    monkeypatch.setenv("GRAPHC_CACHE", "0")
    graph, _ = _chain(ops)
    benchmark.group = "compile time by graph size"
    benchmark.extra_info.update(nodes=len(graph.nodes))
    exe = benchmark.pedantic(gc.compile, args=(graph,), rounds=1, iterations=1)
    assert exe.stats["kernels"] >= 1
