"""ONNX ReduceProd through graphc (graphc/onnx/math_ops.py): values and gradients with zeros.

Input: one-node ReduceProd models (axes as an operand from opset 18, as an attribute before),
loaded with gc.load_onnx and run compiled. Output: pass/fail against np.prod for axes, negative
axes, keepdims, noop_with_empty_axes, empty reductions, scalars and i64; and the gradient
against the product of the other elements written out with loops (rows without a zero, with one
zero and with two), where the textbook prod / x would divide by zero.
"""
from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphc as gc

_ELEM = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE,
         np.int64: TensorProto.INT64}


def _load(tmp_path, shape, dtype, axes, keepdims=1, noop=0, opset=18) -> gc.Graph:
    elem = _ELEM[dtype]
    inputs, inits, attrs = ["data"], [], {"keepdims": keepdims}
    if noop:
        attrs["noop_with_empty_axes"] = noop
    if axes is not None and opset >= 18:
        inputs.append("axes")
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
    elif axes is not None:
        attrs["axes"] = axes
    node = helper.make_node("ReduceProd", inputs, ["reduced"], **attrs)
    out_shape = shape if noop and not axes else np.prod(
        np.zeros(shape), axis=None if axes is None else tuple(axes), keepdims=bool(keepdims)).shape
    graph = helper.make_graph([node], "prod", [helper.make_tensor_value_info("data", elem, shape)],
                              [helper.make_tensor_value_info("reduced", elem, out_shape)], inits)
    path = tmp_path / "prod.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
    return gc.load_onnx(str(path))


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.int64:
        return rng.integers(-3, 4, shape)
    return rng.uniform(-1.5, 1.5, shape).astype(dtype)


@pytest.mark.parametrize("shape, axes, keepdims, dtype", [
    ((3, 4, 5), [1], 1, np.float32), ((3, 4, 5), [0, 2], 0, np.float64),
    ((3, 4, 5), [-1], 1, np.float64), ((3, 4, 5), None, 0, np.float64),
    ((2, 7, 3), [1], 0, np.int64), ((17,), [0], 1, np.float64), ((2, 1, 3), [1], 0, np.float32),
    ((), None, 1, np.float64)])
@pytest.mark.parametrize("opset", [13, 18])
def test_values_match_numpy(tmp_path, shape, axes, keepdims, dtype, opset):
    x = _data(shape, dtype)
    graph = _load(tmp_path, shape, dtype, axes, keepdims, opset=opset)
    got = gc.compile(graph).run({"data": x})["reduced"]
    want = np.prod(x, axis=None if axes is None else tuple(axes), keepdims=bool(keepdims))
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-13)


def test_empty_reduction_is_one_and_noop_is_identity(tmp_path):
    empty = _load(tmp_path, (2, 0, 3), np.float32, [1])
    np.testing.assert_array_equal(
        gc.compile(empty).run({"data": np.zeros((2, 0, 3), np.float32)})["reduced"],
        np.ones((2, 1, 3), np.float32))
    x = _data((2, 3), np.float64)
    noop = _load(tmp_path, (2, 3), np.float64, [], noop=1)
    np.testing.assert_array_equal(gc.compile(noop).run({"data": x})["reduced"], x)


def _others_product(x: np.ndarray) -> np.ndarray:
    """d prod(row) / d x[i, j] = the product of the row's other elements, by loops."""
    grad = np.empty_like(x)
    for i, j in itertools.product(*map(range, x.shape)):
        grad[i, j] = np.prod([x[i, k] for k in range(x.shape[1]) if k != j])
    return grad


@pytest.mark.parametrize("zeros", [0, 1, 2])
def test_gradient_with_zeros(tmp_path, zeros):
    """No zero: prod / x; one zero: the others' product at the zero, 0 elsewhere; two: 0."""
    x = _data((4, 7), np.float64, seed=zeros)
    for row in range(4):
        x[row, np.random.default_rng(row).choice(7, zeros, replace=False)] = 0.0
    graph = _load(tmp_path, (4, 7), np.float64, [1], keepdims=0)
    builder, tensors = gc.GraphBuilder.extend(graph)
    weights = np.arange(1.0, 5.0)
    loss = gc.sum(tensors[graph.outputs["reduced"].name] * gc.constant(builder, weights, "f64"))
    grads = gc.grad(builder.build({"loss": loss}), "loss", ["data"])
    want = _others_product(x) * weights[:, None]
    got = gc.compile(grads).run({"data": x})["data"]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(gc.interpret(grads, {"data": x})["data"], want, rtol=1e-13)
