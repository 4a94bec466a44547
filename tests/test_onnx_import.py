"""gc.load_onnx: converter-made models import, run, differentiate and train like torch says.

Input: the committed tests/data models (PyTorch exports with torch's logits and gradients for
one batch) and small models made here with onnx.helper. Output: checks against onnx's NumPy
reference evaluator, torch's outputs and gradients (1e-4 relative), locations, param naming,
shape binding, opset conversion and a few training steps.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import graphc as gc
from graphc.onnx.table import supported

DATA = os.path.join(os.path.dirname(__file__), "data")
TORCH_MODELS = ["mlp", "encoder"] + (["cnn"] if supported("Conv") and supported("MaxPool")
                                     else [])


def _torch(name):
    return os.path.join(DATA, f"torch_{name}.onnx"), dict(np.load(os.path.join(DATA,
                                                                                f"torch_{name}.npz")))


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_torch_model_matches_reference_and_torch(name):
    path, data = _torch(name)
    graph = gc.load_onnx(path)
    expected = ReferenceEvaluator(path).run(None, {"x": data["x"]})[0]
    interpreted = gc.interpret(graph, {"x": data["x"]})["logits"]
    compiled = gc.compile(graph).run({"x": data["x"]})["logits"]
    np.testing.assert_allclose(interpreted, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compiled, data["logits"], rtol=1e-5, atol=1e-5)


def _grads_vs_torch(name, compiled):
    path, data = _torch(name)
    graph = gc.with_loss(gc.load_onnx(path), "cross_entropy", output="logits", labels="labels")
    params = [i.name for i in graph.inputs_with_role("param")]
    assert sorted(params) == sorted(k[5:] for k in data if k.startswith("grad:"))
    feeds = {"x": data["x"], "labels": data["labels"]}
    if compiled:
        loss, grads = gc.compile_value_and_grad(graph, "loss", params).run(feeds)
    else:
        grads = gc.interpret(gc.grad(graph, "loss", params), feeds)
        loss = float(gc.interpret(graph, feeds)["loss"])
    assert loss == pytest.approx(float(data["loss"]), rel=1e-5)
    for p in params:
        want = data[f"grad:{p}"]
        rel = np.linalg.norm(grads[p] - want) / np.linalg.norm(want)
        assert rel < 1e-4, f"{p}: relative error {rel:.2e}"


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_torch_model_gradients_match_torch(name):
    """Autodiff of the imported graph (interpreted, the oracle) against torch's autograd."""
    _grads_vs_torch(name, compiled=False)


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_compiled_gradients_match_torch(name):
    _grads_vs_torch(name, compiled=True)


def test_params_keep_onnx_names_and_nodes_carry_locations():
    path, _ = _torch("mlp")
    graph = gc.load_onnx(path)
    assert {i.name: i.role for i in graph.inputs} == {
        "x": "input", "0.weight": "param", "0.bias": "param", "2.weight": "param",
        "2.bias": "param"}
    locs = {n.loc for n in graph.nodes}
    assert {"torch_mlp.onnx:/0/Gemm", "torch_mlp.onnx:/1/Relu", "torch_mlp.onnx:/2/Gemm"} <= locs
    assert all(n.loc.startswith("torch_mlp.onnx:") for n in graph.nodes)
    assert "# torch_mlp.onnx:/1/Relu" in graph.to_text()


def test_training_an_imported_mlp_lowers_the_loss():
    path, data = _torch("mlp")
    graph = gc.with_loss(gc.load_onnx(path), "cross_entropy", output="logits")
    step = gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.SGD(lr=0.5))
    feeds = {"x": data["x"], "labels": data["labels"]}
    losses = [step.run(feeds) for _ in range(10)]
    assert losses[-1] < 0.5 * losses[0]


def test_with_loss_mse_and_errors():
    path, data = _torch("mlp")
    graph = gc.with_loss(gc.load_onnx(path), "mse", output="logits", labels="target")
    target = np.zeros((8, 10), np.float32)
    out = gc.interpret(graph, {"x": data["x"], "target": target})
    assert out["loss"] == pytest.approx(float(np.mean(data["logits"] ** 2)), rel=1e-5)
    with pytest.raises(gc.GraphcError, match="no output 'scores'"):
        gc.with_loss(gc.load_onnx(path), output="scores")
    with pytest.raises(gc.GraphcError, match="unknown loss"):
        gc.with_loss(gc.load_onnx(path), "hinge")


# --- small models made here ----------------------------------------------------------------------
def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "m", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_symbolic_dims_need_input_shapes():
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [_f32("x", ["batch", 3])],
                   [_f32("y", ["batch", 3])])
    with pytest.raises(gc.GraphcError, match=r"input 'x'.*symbolic dim 'batch'"):
        gc.load_onnx(model)
    graph = gc.load_onnx(model, input_shapes={"x": (5, 3)})
    assert graph.input_map["x"].value.type == gc.TensorType((5, 3), "f32")
    with pytest.raises(gc.GraphcError, match="does not match the declared shape"):
        gc.load_onnx(model, input_shapes={"x": (5, 4)})


def test_integer_initializers_are_constants_and_shape_chains_fold():
    shape_nodes = [helper.make_node("Shape", ["x"], ["s"]),
                   helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
                   helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
                   helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
                   helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "zero1"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    model = _model(shape_nodes, [_f32("x", [2, 3, 4])], [_f32("y", [2, 12])], inits)
    graph = gc.load_onnx(model)
    assert [i.name for i in graph.inputs] == ["x"]
    assert [n.op for n in graph.nodes] == ["reshape"]
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(gc.interpret(graph, {"x": x})["y"], x.reshape(2, 12))


def test_old_opsets_are_converted():
    nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0]),  # axes attribute (< 13)
             helper.make_node("Softmax", ["u"], ["y"], axis=1)]
    model = _model(nodes, [_f32("x", [3, 4])], [_f32("y", [1, 3, 4])], opset=11)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    got = gc.interpret(gc.load_onnx(model), {"x": x})["y"]
    e = np.exp(x - x.max())  # opset 11 Softmax: over everything from `axis` on (a [1, 12] view)
    np.testing.assert_allclose(got, (e / e.sum())[None], rtol=1e-5)


def test_reduce_axes_as_attribute_or_input():
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    attr = _model([helper.make_node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0)],
                  [_f32("x", [2, 3, 4])], [_f32("y", [2, 4])], opset=17)
    operand = _model([helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)],
                     [_f32("x", [2, 3, 4])], [_f32("y", [2, 4])],
                     [numpy_helper.from_array(np.array([1], np.int64), "axes")], opset=18)
    for model in (attr, operand):
        np.testing.assert_allclose(gc.interpret(gc.load_onnx(model), {"x": x})["y"],
                                   x.mean(axis=1), rtol=1e-6)


def test_unnamed_nodes_are_located_by_op_type_and_index():
    model = _model([helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Neg", ["h"], ["y"])],
                   [_f32("x", [2])], [_f32("y", [2])])
    graph = gc.load_onnx(model)
    assert [n.loc for n in graph.nodes] == ["m:Relu#0", "m:Neg#1"]


def test_saved_file_round_trips_through_onnx_load(tmp_path):
    path, data = _torch("encoder")
    model = onnx.load(path)
    graph = gc.load_onnx(model)
    out = gc.interpret(graph, {"x": data["x"]})["logits"]
    np.testing.assert_allclose(out, data["logits"], rtol=1e-5, atol=1e-5)


def test_graphc_train_trains_an_onnx_classifier(capsys):
    from graphc.cli import main

    path, _ = _torch("mlp")
    assert main(["train", path, "--loss", "cross_entropy", "--data", "digits", "--logits",
                 "logits", "--epochs", "5"]) == 0
    accuracy = float(capsys.readouterr().out.split("held-out accuracy: ")[1].split("%")[0])
    assert accuracy > 85
    assert main(["train", path, "--logits", "nope", "--epochs", "1"]) == 2
    assert "no output 'nope'" in capsys.readouterr().err
