"""Models of opsets before 13, converted on import: meanings the version converter would change.

Input: one-node opset-11 Hardmax models (before opset 13 it works on the input flattened to 2-D
at `axis`) and an opset-10 Scatter model (ScatterElements after conversion). Output: pass/fail
that graphc's compiled results equal onnxruntime's, and that graphc's ONNX backend accepts what
`load_onnx` imports.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import graphc as gc
from graphc.onnx import backend


def _model(node, opset, inputs, out_shape):
    graph = helper.make_graph([node], "m", [helper.make_tensor_value_info(n, t, s)
                                            for n, t, s in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_opset_11_hardmax_flattens_at_its_axis(axis):
    model = _model(helper.make_node("Hardmax", ["x"], ["y"], axis=axis), 11,
                   [("x", TensorProto.FLOAT, [2, 3, 4])], [2, 3, 4])
    x = np.random.default_rng(axis).standard_normal((2, 3, 4)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    got = gc.compile(gc.load_onnx(model)).run({"x": x})["y"]
    np.testing.assert_array_equal(got, want)
    assert got.sum() == {0: 1, 1: 2, 2: 6}[axis]  # one 1 per row of the flattened matrix


def test_backend_checks_support_after_conversion():
    model = _model(helper.make_node("Scatter", ["x", "i", "u"], ["y"], axis=1), 10,
                   [("x", TensorProto.FLOAT, [2, 3]), ("i", TensorProto.INT64, [2, 1]),
                    ("u", TensorProto.FLOAT, [2, 1])], [2, 3])
    assert backend.unsupported(model) is None
    feeds = [np.zeros((2, 3), np.float32), np.array([[2], [0]]), np.ones((2, 1), np.float32)]
    (got,) = backend.prepare(model).run(feeds)
    np.testing.assert_array_equal(got, [[0, 0, 1], [1, 0, 0]])
