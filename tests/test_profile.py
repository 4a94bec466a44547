"""Per-kernel profiling: cycle counters around each kernel call, and `graphc bench --profile`.

Input: the mlp and cnn models compiled with and without profiling. Output: pass/fail that the
profiled step computes exactly what the plain one does, that there is one counter per kernel and
each counts time once steps run, that a matmul kernel's FLOPs are its products', that profiling
is part of the cache key, that a plain step refuses to report a profile, and that the CLI prints
the table and writes its JSON.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from graphc.models import build_model
from graphc.runtime.profile import cycles_per_second, profiling_on

import graphc as gc
from graphc.cli import main


def _feeds(graph):
    rng = np.random.default_rng(0)
    out = {}
    for i in graph.inputs_with_role("input"):
        t = i.value.type
        out[i.name] = rng.integers(0, 10, t.shape) if t.dtype == "i64" else \
            rng.standard_normal(t.shape).astype(t.np_dtype)
    return out


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_profiled_step_computes_the_same_and_counts_every_kernel(name):
    graph = build_model(name)
    feeds = _feeds(graph)
    plain = gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.SGD(lr=0.1))
    with profiling_on():
        profiled = gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.SGD(lr=0.1))
    assert profiled.stats["profiled"] and not plain.stats["profiled"]
    assert "graphc_profile" in profiled.exe.llvm_ir and "graphc_profile" not in plain.exe.llvm_ir
    for _ in range(3):
        assert plain.run(feeds) == profiled.run(feeds)
    for k, v in plain.params.items():
        np.testing.assert_array_equal(v, profiled.params[k])
    rows = profiled.exe.native.kernel_profile(cycles_per_second(0.01))
    assert len(rows) == profiled.stats["kernels"]
    assert all(r.seconds > 0 for r in rows)
    profiled.exe.native.reset_profile()
    assert all(r.seconds == 0 for r in profiled.exe.native.kernel_profile(1.0))


def test_matmul_kernel_flops_are_its_products():
    graph = build_model("mlp")
    with profiling_on():
        step = gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.SGD(lr=0.1))
    total = 0
    for node in step.exe.graph.nodes:
        for n in (node.attrs["body"].nodes if node.op == "fused" else []):
            if n.op == "matmul":
                total += 2 * math.prod(n.outputs[0].type.shape) * n.inputs[0].type.shape[-1]
    rows = step.exe.native.kernel_profile(1.0)
    assert sum(r.flops for r in rows) == total > 0
    assert {r.kind for r in rows if r.flops} == {"matmul"}


def test_a_plain_step_has_no_profile():
    step = gc.compile_train_step(build_model("mlp"), loss="loss",
                                 optimizer=gc.optim.SGD(lr=0.1))
    with pytest.raises(gc.GraphcError, match="compiled without profiling"):
        step.exe.native.kernel_profile(1.0)


def test_bench_profile_prints_the_table_and_writes_json(tmp_path, capsys):
    path = tmp_path / "p.json"
    assert main(["bench", "mlp-tiny", "--profile", "--steps", "2", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ms a step" in out and "GFLOP/s" in out and "matmul" in out
    report = json.loads(path.read_text())
    assert report["steps"] == 2 and report["kernels"]
    assert {"kernel", "role", "ops", "ms", "gflops", "of_peak"} <= set(report["kernels"][0])
