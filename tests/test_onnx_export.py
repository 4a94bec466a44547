"""gc.save_onnx: forward and training graphs written as standard ONNX and read back.

Input: the DSL MLP, its training step (stopped before decomposition and after it), the imported
PyTorch encoder. Output: checks that onnx.checker passes, that onnx's reference evaluator and
graphc agree on the exported file, that import -> export -> import gives the same results, that
updates come out as `update:NAME` outputs, and that onnxruntime agrees too.
"""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from graphc.models.mlp import build_mlp
from onnx.reference import ReferenceEvaluator

import graphc as gc
from graphc import pipeline

DATA = os.path.join(os.path.dirname(__file__), "data")


def _feeds(batch=5, features=8, classes=4):
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((batch, features)).astype(np.float32),
            "y": rng.integers(0, classes, batch)}


def _training_graph(stop_after):
    graph = build_mlp((8, 16, 4), batch=5)
    passes = pipeline.passes_for(train=("loss", gc.optim.SGD(lr=0.1, momentum=0.9)))
    return pipeline.run_pipeline(graph, passes, stop_after=stop_after)


def _run_onnx(path, feeds):
    model = onnx.load(path)
    values = ReferenceEvaluator(model).run(None, feeds)
    return {o.name: v for o, v in zip(model.graph.output, values)}


def test_forward_graph_round_trips(tmp_path):
    graph = build_mlp((8, 16, 4), batch=5)
    path = tmp_path / "mlp.onnx"
    gc.save_onnx(graph, path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    feeds = _feeds()
    want = gc.interpret(graph, feeds)
    again = gc.interpret(gc.load_onnx(path), feeds)
    by_reference = _run_onnx(path, feeds)
    for name in ("loss", "logits"):
        np.testing.assert_allclose(again[name], want[name], rtol=1e-6)
        np.testing.assert_allclose(by_reference[name], want[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stop_after", ["cse", "decompose"])
def test_training_graph_exports_with_update_outputs(tmp_path, stop_after):
    step = _training_graph(stop_after)
    path = tmp_path / "step.onnx"
    gc.save_onnx(step, path)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    outputs = [o.name for o in model.graph.output]
    assert outputs[0] == "loss"
    assert {"update:fc1.weight", "update:fc2.bias", "update:fc1.weight.momentum"} <= set(outputs)
    assert {i.name for i in model.graph.initializer} >= {"fc1.weight", "fc1.weight.momentum"}
    roles = json.loads({p.key: p.value for p in model.metadata_props}["graphc.roles"])
    assert roles["fc1.weight"] == "param" and roles["fc1.weight.momentum"] == "state"
    feeds = _feeds()
    want = gc.interpret(step, feeds, updates=True)
    again = gc.interpret(gc.load_onnx(path), feeds)
    by_reference = _run_onnx(path, feeds)
    for name in outputs:
        np.testing.assert_allclose(again[name], want[name], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(by_reference[name], want[name], rtol=1e-5, atol=1e-6)


def test_import_export_import_of_a_pytorch_model(tmp_path):
    graph = gc.load_onnx(os.path.join(DATA, "torch_encoder.onnx"))
    path = tmp_path / "encoder.onnx"
    gc.save_onnx(graph, path)
    x = dict(np.load(os.path.join(DATA, "torch_encoder.npz")))["x"]
    first = gc.interpret(graph, {"x": x})["logits"]
    second = gc.interpret(gc.load_onnx(path), {"x": x})["logits"]
    np.testing.assert_allclose(second, first, rtol=1e-6, atol=1e-7)
    reimported = gc.load_onnx(path)
    assert {i.name for i in reimported.inputs_with_role("param")} == \
        {i.name for i in graph.inputs_with_role("param")}


def test_the_exported_training_step_trains_like_graphc(tmp_path):
    """Feeding update:NAME back as the next step's initializers repeats graphc's own steps."""
    step = _training_graph("decompose")
    path = tmp_path / "step.onnx"
    gc.save_onnx(step, path)
    model = onnx.load(path)
    feeds = _feeds()
    compiled = gc.compile_train_step(build_mlp((8, 16, 4), batch=5), "loss",
                                     gc.optim.SGD(lr=0.1, momentum=0.9))
    for _ in range(3):
        out = _run_onnx_model(model, feeds)
        assert out["loss"] == pytest.approx(compiled.run(feeds), rel=1e-5)
        for init in model.graph.initializer:
            init.CopyFrom(onnx.numpy_helper.from_array(out[f"update:{init.name}"], init.name))


def _run_onnx_model(model, feeds):
    values = ReferenceEvaluator(model).run(None, feeds)
    return {o.name: v for o, v in zip(model.graph.output, values)}


def test_unexportable_ops_are_listed():
    graph = build_mlp((8, 16, 4), batch=5)
    from graphc.onnx import export

    one_to_one = export.rule
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(export, "rule", lambda op: None if op == "relu" else one_to_one(op))
        with pytest.raises(gc.GraphcError, match="no ONNX export rule:\n  relu at"):
            gc.save_onnx(graph, os.devnull)


def test_onnxruntime_agrees_on_the_exported_training_step(tmp_path):
    import onnxruntime as ort

    step = _training_graph("decompose")
    path = tmp_path / "step.onnx"
    gc.save_onnx(step, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = _feeds()
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, feeds)))
    want = gc.interpret(step, feeds, updates=True)
    for name in names:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_normalization_ops_export_as_onnx_ops_or_decompositions(tmp_path):

    rng = np.random.default_rng(3)
    b = gc.GraphBuilder("norms")
    x = b.input("x", (2, 3, 4, 4))
    scale = b.param("scale", rng.uniform(0.5, 1.5, 3).astype(np.float32))
    shift = b.param("shift", rng.standard_normal(3).astype(np.float32))
    h = gc.batch_norm_training(x, scale, shift)  # no ONNX op: written as its decomposition
    h = gc.lrn(h, 3)
    h = gc.layer_norm(h, b.param("ln.w", np.ones(4, np.float32)),
                     b.param("ln.b", np.zeros(4, np.float32)))
    graph = b.build({"y": h})
    path = tmp_path / "norms.onnx"
    gc.save_onnx(graph, path)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert {"LRN", "LayerNormalization"} <= ops
    feeds = {"x": rng.standard_normal((2, 3, 4, 4)).astype(np.float32)}
    want = gc.interpret(graph, feeds)["y"]
    # ONNX's own conformance tolerance: its reference LRN sums the window in another order
    np.testing.assert_allclose(_run_onnx(path, feeds)["y"], want, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(gc.interpret(gc.load_onnx(path), feeds)["y"], want, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("seed, shape", [(0, (3, 5, 7)), (3, (3, 5, 7)), (1, ()),
                                         (2, (2, 0, 3))])
def test_dropout_mask_exports_bit_for_bit(tmp_path, seed, shape):
    """The exported mask is graphc's hash in ONNX uint64 ops: the same keep decisions at
    every element and step, and a dropout layer's output agrees."""

    b = gc.GraphBuilder("drop")
    step = b.input("step", (), "i64")
    x = b.input("x", shape)
    mask = gc.dropout_mask(step, shape, 0.3, seed)
    graph = b.build({"mask": mask, "y": gc.where(mask, x / 0.7, 0.0)})
    path = tmp_path / "drop.onnx"
    gc.save_onnx(graph, path)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for t in (0, 1, 2**40 + 7):
        feeds = {"step": np.array(t, np.int64), "x": x}
        want = gc.interpret(graph, feeds)
        by_ort = dict(zip(["mask", "y"], session.run(["mask", "y"], feeds)))
        for got in (_run_onnx(path, feeds), by_ort):
            np.testing.assert_array_equal(got["mask"], want["mask"])
            np.testing.assert_allclose(got["y"], want["y"], rtol=1e-6)
    if want["mask"].size > 100:
        assert 0.5 < want["mask"].mean() < 0.9
