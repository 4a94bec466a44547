"""`graphc info`: a model's facts before training it, for registered models and ONNX files.

Input: the mlp model, small hand-built ONNX models (one graphc imports, one with an op it lacks,
one with a symbolic batch dim). Output: pass/fail that the printed and JSON facts equal what the
compiler reports (kernels, arena and lower bound from the compiled step's stats, FLOPs from
graphc/flops.py, initializer classes from describe_onnx), that unsupported ops are all listed
with exit status 1, and that bad `--shape` values are errors.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
from graphc.models import build_model
from onnx import TensorProto, helper, numpy_helper

import graphc as gc
from graphc.cli import main
from graphc.flops import forward_flops, training_flops


def test_registered_model_facts_match_the_compiler(capsys):
    assert main(["info", "mlp", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    graph = build_model("mlp")
    step = gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.SGD(lr=0.1))
    assert facts["compiled"] == "training step"
    for key in ("kernels", "planned_bytes", "lower_bound_bytes", "naive_bytes"):
        assert facts[key] == step.stats[key]
    assert facts["forward_flops"] == forward_flops(graph) > 0
    assert facts["training_flops"] == training_flops(graph)
    assert facts["params"] == len(graph.inputs_with_role("param"))
    assert main(["info", "mlp"]) == 0
    assert f"{step.stats['kernels']} kernels" in capsys.readouterr().out


def _onnx(tmp_path, op="Relu", batch=4):
    init = [numpy_helper.from_array(np.ones((3, 2), np.float32), "fc.weight"),
            numpy_helper.from_array(np.array([0, -np.inf], np.float32), "mask")]
    nodes = [helper.make_node("MatMul", ["x", "fc.weight"], ["h"]),
             helper.make_node("Add", ["h", "mask"], ["m"]), helper.make_node(op, ["m"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2])], init)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def test_onnx_file_lists_op_types_and_initializer_classes(tmp_path, capsys):
    assert main(["info", _onnx(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "MatMul 1, Add 1, Relu 1" in out
    assert "1 param (6 values)" in out and "1 constant" in out
    assert any(line.split()[:2] == ["mask", "constant"] for line in out.splitlines())


def test_unsupported_ops_are_listed_with_status_1(tmp_path, capsys):
    assert main(["info", _onnx(tmp_path, op="Unique")]) == 1
    out = capsys.readouterr().out
    assert "unsupported (1)" in out and "Unique" in out


def test_symbolic_dims_take_shape_and_bad_shapes_are_errors(tmp_path, capsys):
    path = _onnx(tmp_path, batch="n")
    assert main(["info", path, "--shape", "x=5,3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inputs"] == [{"name": "x", "type": "f32[5,3]"}]
    assert main(["info", path, "--shape", "x=five"]) == 2
    assert "expected NAME=D,D" in capsys.readouterr().err
