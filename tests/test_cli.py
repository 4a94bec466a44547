"""The `graphc` command: compile with every --emit on a model and a text-IR file,
--print-after / --stop-after / --report, error paths (exit 2, one line, no traceback), and a
one-epoch `graphc train` smoke run."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import graphc as gc
from graphc import pipeline
from graphc.cli import format_report, main
from tests.golden import check_lines

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def text_graph(tmp_path_factory) -> str:
    b = gc.GraphBuilder("tiny")
    x = b.input("x", (4, 3), "f32")
    w = b.param("w", np.ones((3, 2), np.float32))
    graph = b.build(outputs={"loss": gc.mean(gc.tanh(x @ w))})
    path = tmp_path_factory.mktemp("ir") / "tiny.gc"
    path.write_text(graph.to_text())
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("target", ["mlp", "text"])
@pytest.mark.parametrize("emit,marker", [("graph", "graph "), ("llvm", "define"),
                                         ("asm", "ret")])
def test_compile_emits(capsys, text_graph, target, emit, marker):
    code, out, err = run(capsys, "compile", text_graph if target == "text" else target,
                         "--emit", emit)
    assert (code, err) == (0, "")
    assert marker in out


def test_compile_graph_is_the_default_emit_and_parses(capsys):
    code, out, _ = run(capsys, "compile", "mlp")
    assert code == 0 and out.startswith("graph mlp")
    gc.parse(out)


def test_compile_train_step_graph_has_updates(capsys, text_graph):
    code, out, _ = run(capsys, "compile", text_graph, "--train", "--optimizer", "adam")
    assert code == 0
    assert "update %w = " in out and "adam.step" in out


def test_print_after_all_prints_every_stage_with_a_text_form(capsys):
    code, out, _ = run(capsys, "compile", "mlp", "--train", "--print-after", "all")
    assert code == 0
    train = ("loss", gc.optim.SGD(lr=0.1, momentum=0.9))
    names = [name for name, _ in pipeline.passes_for(train=train, through="lower")]
    assert names[-3:] == ["schedule", "plan", "lower"]
    assert [line.split()[3] for line in out.splitlines() if line.startswith("// -----")] == names


def test_print_after_plan_prints_every_buffer_and_the_plan_bytes(capsys, text_graph):
    code, out, _ = run(capsys, "compile", text_graph, "--train", "--print-after", "plan")
    assert code == 0 and out.count("// ----- after") == 1
    check_lines(out, """
        // ----- after plan -----
        plan tiny: 3 kernels
        naive_bytes
        %x: f32[4,3]  io[0]  live in..
        %w: f32[3,2]  param[0]  live in..
        io[1] (output loss)  live 2..end
        param[0] (in place of w)  live 3..end
        NOT: define
    """)
    code, report, _ = run(capsys, "compile", text_graph, "--train", "--report")
    stats = dict(line.split(None, 1) for line in report.splitlines())
    for key in ("naive_bytes", "planned_bytes", "lower_bound_bytes"):  # the same plan
        assert f"{key} {stats[key].split()[0]}" in out


def test_print_after_lower_prints_the_entry_and_kernels_llvm_ir(capsys, text_graph):
    code, out, _ = run(capsys, "compile", text_graph, "--train", "--print-after", "lower")
    assert code == 0 and out.count("// ----- after") == 1
    assert out.startswith("// ----- after lower -----\n")
    check_lines(out, """
        define void @"graphc_main"(i8* noalias %"arena", i8** %"params", i8** %"io")
        define void @"k1_fused"
    """)


def test_stop_after_plan_prints_the_plan_and_compiles_no_further(capsys, text_graph):
    code, out, _ = run(capsys, "compile", text_graph, "--train", "--stop-after", "plan",
                       "--report")
    assert code == 0 and out.startswith("plan tiny: 3 kernels")
    assert "lower_bound_bytes" in out and "define" not in out and "jit_seconds" not in out
    code, out, _ = run(capsys, "compile", text_graph, "--stop-after", "lower")
    assert code == 0 and out.startswith("; ModuleID") and "define void @\"graphc_main\"" in out


def test_print_after_one_pass_and_stop_after(capsys):
    code, out, _ = run(capsys, "compile", "mlp", "--print-after", "decompose")
    assert code == 0 and out.count("// ----- after") == 1 and "after decompose" in out
    code, out, _ = run(capsys, "compile", "mlp", "--train", "--stop-after", "training")
    assert code == 0 and out.startswith("graph mlp") and "softmax_cross_entropy" in out


def test_report_prints_stats_table(capsys, text_graph):
    code, out, _ = run(capsys, "compile", text_graph, "--report")
    assert code == 0
    for key in ("kernels", "naive_bytes", "planned_bytes", "lower_bound_bytes"):
        assert key in out


def test_format_report_flattens_and_formats():
    table = format_report({"kernels": 3, "planned_bytes": 2048, "jit_seconds": 0.25,
                           "stages": {"lower_seconds": 1.5}})
    assert "kernels" in table and "2,048 B" in table and "0.250 s" in table
    assert "stages.lower_seconds  1.500 s" in table


@pytest.mark.parametrize("argv,message", [
    (["compile", "no/such/file.gc"], "neither a model"),
    (["compile", "mlp", "--print-after", "nosuchpass"], "unknown pass"),
    (["compile", "mlp", "--train", "--loss", "logits2"], "no output 'logits2'"),
])
def test_errors_exit_2_with_one_message(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("graphc: error: ") and message in err and "Traceback" not in err


def test_bad_text_is_a_parse_error(capsys, tmp_path):
    bad = tmp_path / "bad.gc"
    bad.write_text("graph g\n  input %x: f32[2\n")
    code, _, err = run(capsys, "compile", str(bad))
    assert code == 2 and err.startswith("graphc: error: ")


def test_error_exit_code_through_the_interpreter():
    proc = subprocess.run([sys.executable, "-m", "graphc.cli", "compile", "nope.gc"],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("graphc: error: ") and "Traceback" not in proc.stderr


def test_train_one_epoch_smoke(capsys):
    code, out, _ = run(capsys, "train", "--epochs", "1", "--quiet", "--hidden", "32")
    assert code == 0
    assert "held-out accuracy: " in out and "(359 examples)" in out and "wall time" in out
    accuracy = float(out.split("held-out accuracy: ")[1].split("%")[0])
    assert accuracy > 50.0


def test_train_adam_and_save(capsys, tmp_path):
    path = tmp_path / "mlp.gcstep"
    code, out, _ = run(capsys, "train", "--epochs", "1", "--quiet", "--optimizer", "adam",
                       "--batch", "128", "--save", str(path))
    assert code == 0 and path.exists() and "held-out accuracy" in out


def test_no_subcommand_means_train(capsys):
    code, out, _ = run(capsys, "--epochs", "1", "--quiet", "--hidden", "16", "16")
    assert code == 0 and "model 64-16-16-10" in out and "held-out accuracy" in out


def test_version_and_threads(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"graphc {version('graphc')}"
    try:
        assert main(["train", "--epochs", "1", "--quiet", "--threads", "1"]) == 0
        from graphc.runtime.parallel import num_threads

        assert num_threads() == 1
        assert main(["train", "--epochs", "1", "--quiet", "--threads", "0"]) == 2
        assert "expected a positive int" in capsys.readouterr().err
    finally:
        gc.set_num_threads(None)


def test_train_stops_on_a_non_finite_loss(capsys):
    assert main(["train", "--epochs", "2", "--quiet", "--lr", "1e30"]) == 2
    err = capsys.readouterr().err
    assert "the training loss is" in err and "training stopped" in err
