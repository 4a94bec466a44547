"""`graphc bench`: the table and JSON for mlp-tiny against NumPy (both OpenBLAS variants), first
losses checked, the "not installed" path, PyTorch and JAX when they are installed, FLOP counts,
and usage errors (unknown model or framework: one line, exit 2)."""
from __future__ import annotations

import importlib.util
import json
import math

import pytest
from graphc.models.bench import harness as bench
from graphc.models.bench.frameworks import BENCH_MODELS

import graphc as gc
from graphc.cli import main
from graphc.flops import product_flops, training_flops

FAST = ["--rounds", "2", "--round-time", "0.02"]


def rows(out: str) -> dict[str, list[str]]:
    """The table's rows by framework: the name column is 14 characters wide."""
    names = ("graphc", "numpy", "numpy-avx512", "torch", "jax")
    return {line[:14].strip(): [line[:14].strip(), *line[14:].split()]
            for line in out.splitlines() if line[:14].strip() in names}


def test_bench_numpy_table_and_json(capsys, tmp_path):
    path = tmp_path / "bench.json"
    code = main(["bench", "mlp-tiny", "--vs", "numpy", *FAST, "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    table = rows(out)
    for name in ("graphc", "numpy", "numpy-avx512"):
        assert float(table[name][2]) > 0  # median ms
    assert float(table["graphc"][3]) == 1.0
    assert "first losses agree" in out and "graphc compile:" in out
    report = json.loads(path.read_text())
    assert report["model"] == "mlp-tiny" and report["batch"] == 32
    results = {r["name"]: r for r in report["frameworks"]}
    assert list(results) == ["graphc", "numpy", "numpy-avx512"]
    assert all(r["status"] == "ok" and len(r["round_seconds"]) == 2 for r in results.values())
    losses = [r["first_loss"] for r in results.values()]
    assert all(math.isclose(a, losses[0], rel_tol=1e-3) for a in losses)
    assert report["compile"]["compile_cold_s"] > 0 and report["compile"]["compile_warm_s"] > 0
    assert report["flops_per_step"] == 2 * 32 * (784 * 128 * 2 + 128 * 10 * 3)
    peak = report["machine"]["fma_peak_gflops"]  # measured by the graphc runner
    assert len(peak) == 2 and all(p > 0 for p in peak)
    assert "FMA ceiling of one core, measured by graphc's runner" in out


def test_bench_torch_and_jax_or_not_installed(capsys):
    """Runs PyTorch and JAX where installed; otherwise their rows say "not installed"."""
    code = main(["bench", "mlp-tiny", "--vs", "torch,jax", "--rounds", "1",
                 "--round-time", "0.02"])
    out = capsys.readouterr().out
    assert code == 0, out
    table = rows(out)
    for name in ("torch", "jax"):
        if importlib.util.find_spec(name) is not None:
            assert float(table[name][2]) > 0 and float(table[name][6]) == pytest.approx(
                float(table["graphc"][6]), rel=1e-3)
        else:
            assert table[name][1:] == ["not", "installed"]


def test_not_installed_frameworks_are_listed(monkeypatch):
    monkeypatch.setattr(bench, "installed", lambda name: name not in ("torch", "jax", "graphc"))
    report = bench.run_bench("mlp-tiny", "torch,jax", rounds=1)
    assert [(r.name, r.status) for r in report.frameworks] == [
        ("graphc", "not installed"), ("torch", "not installed"), ("jax", "not installed")]
    assert "torch         not installed" in bench.format_report(report)


def test_disagreeing_first_loss_names_the_framework():
    results = {n: bench.FrameworkResult(n, first_loss=loss)
               for n, loss in (("graphc", 2.30), ("numpy", 2.30), ("jax", 2.40))}

    class Closed:
        def close(self):
            self.closed = True
    runners = {n: Closed() for n in results}
    bench.check_first_losses(results, runners)
    assert results["jax"].status == "error" and "jax: first loss 2.4" in results["jax"].error
    assert set(runners) == {"graphc", "numpy"}


@pytest.mark.parametrize("argv,message", [
    (["bench", "resnet"], "unknown bench model 'resnet'; choose from mlp-tiny"),
    (["bench", "mlp-tiny", "--vs", "numpy,tensorflow"], "unknown framework 'tensorflow'"),
    (["bench", "mlp-tiny", "--threads", "0"], "must be at least 1"),
])
def test_usage_errors_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphc: error: ") and message in err and err.count("\n") == 1


def test_vs_parsing():
    assert bench.parse_frameworks("numpy,torch,jax") == [
        "graphc", "numpy", "numpy-avx512", "torch", "jax"]
    assert bench.parse_frameworks("numpy-avx512, jax") == ["graphc", "numpy-avx512", "jax"]


@pytest.mark.parametrize("name", list(BENCH_MODELS))
def test_training_flops_count_every_product(name):
    graph = BENCH_MODELS[name].build()
    products = [n for n in graph.nodes if n.op == "matmul" or n.op.startswith("conv")]
    forward = sum(product_flops(n) for n in products)
    assert 2 * forward <= training_flops(graph) <= 3 * forward


@pytest.mark.parametrize("threads, peak, want", [
    (1, [100.0, 110.0], "100 and 110 GFLOP/s; graphc's step reached 50% of 110"),
    (2, [110.0], "110 GFLOP/s; graphc's step reached 25% of 2 x 110"),
    (1, [], None)])
def test_the_report_states_the_measured_fma_ceiling(threads, peak, want):
    graphc = bench.FrameworkResult("graphc", median_s=0.01, gflops=55.0, vs_graphc=1.0,
                                   graphc_over=1.0, first_loss=2.3)
    report = bench.BenchReport("m", "a model", 8, threads, 3, 10**9, {}, [graphc],
                               {"cpu": "cpu", "cpus": 2, "loadavg_start": (0.1, 0, 0),
                                "fma_peak_gflops": peak})
    text = bench.format_report(report)
    if want is None:
        assert "FMA ceiling" not in text
    else:
        assert want in text


def test_a_runner_dying_while_measuring_the_ceiling_is_an_error_row():
    class Dead:
        def fma_peak(self):
            raise gc.GraphcError("graphc runner exited (code 1)")

        def close(self):
            pass

    results, runners = {"graphc": bench.FrameworkResult("graphc")}, {"graphc": Dead()}
    assert bench.fma_peak(runners, results) is None
    assert results["graphc"].status == "error" and "exited" in results["graphc"].error
    assert runners == {} and bench.fma_peak(runners, results) is None
