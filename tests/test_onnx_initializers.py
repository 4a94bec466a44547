"""Initializers classified the way a trainer means them: params, state, constants.

Input: small torch modules exported by torch's legacy exporter (eval and training mode) and
hand-built ONNX models. Output: pass/fail that `load_onnx` trains only parameters (never
BatchNormalization running statistics, masks, scalars or exporter-made constants), that
training-mode BatchNormalization updates its running statistics with the op's momentum while
the losses follow torch's, that eval-mode statistics stay fixed, that `trainable=`/`frozen=`
choose, and that `describe_onnx` gives every initializer's class and reason.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphc as gc

torch = pytest.importorskip("torch", reason="the torch-export tests need torch (a test extra)")


def _conv_bn_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3),
                               torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(48, 5))


def _export(model, x, path, training):
    mode = torch.onnx.TrainingMode.TRAINING if training else torch.onnx.TrainingMode.EVAL
    model.train(training)
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["logits"], training=mode,
                      do_constant_folding=not training)
    return path


def _train_both(model, path, x, y, steps=5, **load):
    graph = gc.with_loss(gc.load_onnx(path, **load), "cross_entropy", output="logits",
                         labels="labels")
    step = gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.SGD(lr=0.1,
                                                                            momentum=0.0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ours, theirs = [], []
    for _ in range(steps):
        ours.append(float(step.run({"x": x.numpy(), "labels": y.numpy()})))
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        theirs.append(float(loss))
    return graph, step, ours, theirs


@pytest.fixture
def data():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(4, 2, 6, 6, generator=gen), torch.randint(0, 5, (4,), generator=gen)


def test_training_mode_batch_norm_updates_its_statistics_and_follows_torch(tmp_path, data):
    x, y = data
    model = _conv_bn_net()
    path = _export(model, x, tmp_path / "train.onnx", training=True)
    model.train()
    with torch.no_grad():
        conv = model[0](x).numpy()
    graph, step, ours, theirs = _train_both(model, path, x, y)
    roles = {i.name: i.role for i in graph.inputs}
    assert roles["1.running_mean"] == roles["1.running_var"] == "state"
    assert {n for n, r in roles.items() if r == "param"} == {
        "0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"}
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    # torch's running mean after 5 steps; the ONNX update rule (momentum 0.9) gives the same
    np.testing.assert_allclose(step.state["1.running_mean"], model[1].running_mean.numpy(),
                               rtol=1e-5, atol=1e-7)
    # after one step: ONNX's rule with the batch's (population) variance
    one = gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.SGD(lr=0.1))
    one.run({"x": x.numpy(), "labels": y.numpy()})
    want = 0.9 * graph.initializers["1.running_var"] + 0.1 * conv.var(axis=(0, 2, 3))
    np.testing.assert_allclose(one.state["1.running_var"], want, rtol=1e-5)


def test_eval_mode_statistics_stay_fixed_and_losses_follow_torch(tmp_path, data):
    x, y = data
    model = _conv_bn_net()
    with torch.no_grad():  # statistics that are not the defaults
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    path = tmp_path / "eval.onnx"
    model.eval()
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["logits"], do_constant_folding=False)
    graph, step, ours, theirs = _train_both(model, path, x, y)
    assert {i.name: i.role for i in graph.inputs}["1.running_var"] == "state"
    assert not graph.updates
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    np.testing.assert_array_equal(step.state["1.running_var"], model[1].running_var.numpy())


def test_folded_conv_batch_norm_weights_are_still_trained(tmp_path, data):
    """The legacy exporter folds an eval BatchNormalization into its Conv under a generated
    name (onnx::Conv_*): those are the conv's weights and must train."""
    x, _ = data
    model = _conv_bn_net()
    path = _export(model, x, tmp_path / "folded.onnx", training=False)
    names = [t.name for t in onnx.load(str(path)).graph.initializer]
    assert any(n.startswith("onnx::Conv") for n in names)
    graph = gc.load_onnx(path)
    params = {i.name for i in graph.inputs_with_role("param")}
    assert params == set(names)


def _model(initializers, nodes, inputs, outputs, producer=""):
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name=producer)
    return model


def _masked_model(producer=""):
    init = {"w": np.ones((3, 3), np.float32), "net.scale": np.full((3,), 2.0, np.float32),
            "mask": np.array([0, -np.inf, 0], np.float32), "two": np.array(2.0, np.float32),
            "val_3": np.ones((3,), np.float32), "shape": np.array([3, 3], np.int64)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Mul", ["h", "net.scale"], ["s"]),
             helper.make_node("Add", ["s", "mask"], ["m"]),
             helper.make_node("Pow", ["m", "two"], ["p"]),
             helper.make_node("Add", ["p", "val_3"], ["q"]),
             helper.make_node("Reshape", ["q", "shape"], ["y"])]
    return _model(init, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])], producer)


def _roles(graph):
    return {i.name: i.role for i in graph.inputs if i.role != "input"}


def test_masks_scalars_and_integers_are_constants():
    assert _roles(gc.load_onnx(_masked_model())) == {"w": "param", "net.scale": "param",
                                                      "val_3": "param"}
    # from torch, a generated name that is no weight operand is the exporter's constant
    assert _roles(gc.load_onnx(_masked_model("pytorch"))) == {"w": "param",
                                                               "net.scale": "param"}
    report = gc.describe_onnx(_masked_model("pytorch"))
    assert "3 params" not in report and "2 params" in report
    for name, why in [("mask", "inf or nan"), ("two", "0-d scalar"), ("shape", "int64"),
                      ("val_3", "made by the exporter"), ("w", "a weight of MatMul")]:
        line = next(row for row in report.splitlines() if row.startswith(name + " "))
        assert why in line, line


def test_trainable_and_frozen_choose():
    model = _masked_model()
    assert _roles(gc.load_onnx(model, trainable=["w"])) == {"w": "param"}
    assert _roles(gc.load_onnx(model, trainable=lambda n: n.startswith("net."))) == {
        "net.scale": "param"}
    assert _roles(gc.load_onnx(model, frozen=["w"])) == {"net.scale": "param", "val_3": "param"}
    with pytest.raises(gc.GraphcError, match=r"trainable= names \['W'\], which are not"):
        gc.load_onnx(model, trainable=["W"])
    with pytest.raises(gc.GraphcError, match="not the string"):
        gc.load_onnx(model, frozen="w")


def test_constants_are_folded_and_the_results_unchanged():
    x = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)
    want = ((x @ np.ones((3, 3), np.float32)) * 2.0 + np.array([0, -np.inf, 0])) ** 2 + 1
    for producer in ("", "pytorch"):
        got = gc.compile(gc.load_onnx(_masked_model(producer))).run({"x": x})["y"]
        np.testing.assert_allclose(got, want, rtol=1e-6)
