"""Benchmarks: imported CNN training steps, graphc against torch eager (issue 13's targets).

Input: the zoo's ResNet-18, VGG-style, MobileNetV2-style and 1-D audio nets (tests/zoo), batch
8, exported by torch's legacy exporter and imported by graphc; the same module trained by torch
eager from the same weights, batch and learning rate (tools/bench_imported.py). Output:
`pytest tests/benchmarks/test_bench_imported.py --benchmark-enable` times one SGD step of each
under both (one thread each); in the normal test run each runs once. No timing asserts; before
any timing the two first losses must agree.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the imported models are exported by torch")

import graphc as gc
from tests.zoo.check import export
from tools.bench_imported import _steps, _zoo

MODELS = ["resnet18", "vgg", "mobilenet_v2", "audio"]


@pytest.fixture(scope="module", params=MODELS)
def steps(request, tmp_path_factory):
    torch.set_num_threads(1)
    gc.set_num_threads(1)
    try:
        zoo = _zoo(request.param, 8)
        path = export(zoo, tmp_path_factory.mktemp(request.param) / "m.onnx", "legacy")
        ours, theirs = _steps(zoo, path)
        assert float(ours()) == pytest.approx(theirs(), rel=1e-4)  # the first losses agree
        yield request.param, ours, theirs
    finally:
        gc.set_num_threads(None)


@pytest.mark.parametrize("framework", ["graphc", "torch"])
def test_imported_cnn_step(benchmark, steps, framework):
    name, ours, theirs = steps
    benchmark.group = f"imported {name}"
    benchmark.extra_info.update(model=name, framework=framework, batch=8, threads=1)
    benchmark.pedantic(ours if framework == "graphc" else theirs, rounds=5, iterations=1,
                       warmup_rounds=1)
