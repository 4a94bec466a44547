"""ONNX's GridSample, AffineGrid, LpPool, Col2Im, CumProd, Det, SwiGLU, ReverseSequence and
the training ops: what ONNX's node suite does not cover (gradients, more attribute values,
refusals).

Input: one-node models built here with onnx.helper and imported with gc.load_onnx
(graphc/onnx/extra_ops.py and window_ops.py build them); the training ops' functions called on
a GraphBuilder directly (the importer refuses their domain today). Output: compiled values
equal torch's (or onnx's reference evaluator's), compiled gradients of sum(y * r) for fixed
weights r equal torch autograd's or float64 central differences, and values graphc cannot
take are GraphcErrors naming the attribute value or operand.
"""
from __future__ import annotations

import itertools

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

import graphc as gc
from graphc.builder import GraphBuilder
from graphc.errors import GraphcError
from graphc.onnx import training_ops

Fn = torch.nn.functional
RNG = np.random.default_rng(11)


def onnx_model(op, feeds, static=None, opset=22, domain="", **attrs):
    """op(feeds..., static...) -> Y; `static` operands are int64 initializers."""
    static = {k: np.asarray(v) for k, v in (static or {}).items()}
    node = helper.make_node(op, [*feeds, *static], ["Y"], name="the_node", domain=domain,
                            **attrs)
    graph = helper.make_graph(
        [node], "extra",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in feeds.items()],
        [helper.make_empty_tensor_value_info("Y")],
        [numpy_helper.from_array(a, n) for n, a in static.items()])
    return typed(helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, opset)]))


def typed(model):
    """The outputs' types from ONNX's shape inference (the checker wants them)."""
    return shape_inference.infer_shapes(model)


def value_and_grads(model, feeds, wrt, weights=None):
    """Compiled Y and the gradients of sum(Y * r) w.r.t. `wrt` (r fixed, or `weights`)."""
    graph = gc.load_onnx(model)
    y = gc.compile(graph).run(feeds)["Y"]
    r = RNG.uniform(0.5, 1.5, y.shape).astype(y.dtype) if weights is None else weights
    b, tensors = GraphBuilder.extend(graph)
    out = tensors[graph.outputs["Y"].name]
    loss = b.build({"loss": gc.sum(out * gc.constant(b, r, out.dtype))})
    _, grads = gc.compile_value_and_grad(loss, "loss", wrt).run(feeds)
    return y, grads, r


def torch_grads(fn, feeds, wrt, r):
    tensors = {k: torch.tensor(v, requires_grad=k in wrt) for k, v in feeds.items()}
    y = fn(**tensors)
    (y * torch.from_numpy(r)).sum().backward()
    return y.detach().numpy(), {k: tensors[k].grad.numpy() for k in wrt}


def assert_close_norm(got, want, tol=1e-4, what=""):
    scale = max(np.linalg.norm(want), 1e-6)
    rel = np.linalg.norm(got - want) / scale
    assert rel < tol, f"{what}: relative error {rel:.2e}"


def compare_with_torch(model, feeds, wrt, fn, tol=1e-4):
    y, grads, r = value_and_grads(model, feeds, wrt)
    want, want_grads = torch_grads(fn, feeds, wrt, r)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    for k in wrt:
        assert_close_norm(grads[k], want_grads[k], tol, k)


# --- GridSample and AffineGrid -----------------------------------------------------------------
_TORCH_MODE = {"linear": "bilinear", "nearest": "nearest", "cubic": "bicubic"}
_GRID_CASES = [(d, mode, pad, ac) for d, mode, pad, ac in itertools.product(
    (2, 3), _TORCH_MODE, ("zeros", "border", "reflection"), (0, 1))
    if not (d == 3 and mode == "cubic")]


@pytest.mark.parametrize("d, mode, padding, align", _GRID_CASES)
def test_grid_sample_matches_torch_values_and_gradients(d, mode, padding, align):
    """Grid points out to 1.4 (outside the image) exercise every padding mode; nearest has
    no gradient w.r.t. the grid (torch's is 0 as well)."""
    x_shape, grid_shape = ((2, 3, 4, 5), (2, 3, 4, 2)) if d == 2 else \
        ((1, 2, 3, 4, 3), (1, 2, 3, 2, 3))
    feeds = {"X": RNG.standard_normal(x_shape).astype(np.float32),
             "grid": RNG.uniform(-1.4, 1.4, grid_shape).astype(np.float32)}
    model = onnx_model("GridSample", feeds, mode=mode, padding_mode=padding,
                       align_corners=align)
    compare_with_torch(model, feeds, ["X", "grid"], lambda X, grid: Fn.grid_sample(
        X, grid, mode=_TORCH_MODE[mode], padding_mode=padding, align_corners=bool(align)))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_grid_sample_opset16_mode_names(mode):
    feeds = {"X": RNG.standard_normal((1, 2, 3, 4)).astype(np.float32),
             "grid": RNG.uniform(-1.1, 1.1, (1, 2, 2, 2)).astype(np.float32)}
    model = onnx_model("GridSample", feeds, opset=16, mode=mode)
    got = gc.compile(gc.load_onnx(model)).run(feeds)["Y"]
    want = Fn.grid_sample(torch.from_numpy(feeds["X"]), torch.from_numpy(feeds["grid"]),
                          mode=mode, align_corners=False).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attr, value", [("mode", "area"), ("padding_mode", "wrap")])
def test_grid_sample_refuses_unknown_attribute_values(attr, value):
    feeds = {"X": np.zeros((1, 1, 2, 2), np.float32), "grid": np.zeros((1, 1, 1, 2), np.float32)}
    with pytest.raises(GraphcError, match=rf"the_node: GridSample: {attr} '{value}'"):
        gc.load_onnx(onnx_model("GridSample", feeds, **{attr: value}))


@pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid")  # unit-size grids
@pytest.mark.parametrize("size, align", list(itertools.product(
    [(2, 3, 4, 5), (1, 2, 3, 1, 4), (2, 1, 1, 3)], (0, 1))))
def test_affine_grid_matches_torch_values_and_gradients(size, align):
    d = len(size) - 2
    feeds = {"theta": RNG.standard_normal((size[0], d, d + 1)).astype(np.float32)}
    model = onnx_model("AffineGrid", feeds, {"size": np.array(size, np.int64)}, opset=20,
                       align_corners=align)
    compare_with_torch(model, feeds, ["theta"], lambda theta: Fn.affine_grid(
        theta, list(size), align_corners=bool(align)))


# --- LpPool and Col2Im -------------------------------------------------------------------------
def _torch_lp_pool(x, p, kernel, strides, pads, dilations):
    """(sum of |x|^p over each window)^(1/p) with zero padding, by a convolution with ones."""
    d = len(kernel)
    n, c = x.shape[:2]
    powered = x.abs() ** p
    flat = Fn.pad(powered.reshape(n * c, 1, *x.shape[2:]),
                  [v for a in reversed(range(d)) for v in (pads[a], pads[d + a])])
    conv = (Fn.conv1d, Fn.conv2d, Fn.conv3d)[d - 1]
    total = conv(flat, torch.ones((1, 1, *kernel), dtype=x.dtype), stride=strides,
                 dilation=dilations)
    return (total ** (1.0 / p)).reshape(n, c, *total.shape[2:])


@pytest.mark.parametrize("shape, p, kernel, strides, pads, dilations", [
    ((2, 3, 7), 3, (2,), (2,), (1, 0), (1,)),
    ((1, 2, 5, 6), 2, (3, 2), (1, 2), (1, 0, 2, 1), (1, 1)),
    ((1, 2, 6, 5), 1, (2, 2), (2, 1), (0, 0, 0, 0), (2, 1)),
    ((1, 1, 4, 5, 4), 4, (2, 2, 2), (1, 2, 1), (0, 1, 0, 1, 0, 1), (1, 1, 2)),
])
def test_lp_pool_matches_torch_values_and_gradients(shape, p, kernel, strides, pads,
                                                    dilations):
    feeds = {"X": RNG.standard_normal(shape).astype(np.float32)}
    model = onnx_model("LpPool", feeds, p=p, kernel_shape=list(kernel), strides=list(strides),
                       pads=list(pads), dilations=list(dilations))
    compare_with_torch(model, feeds, ["X"], lambda X: _torch_lp_pool(
        X, p, kernel, strides, pads, dilations))


def test_lp_pool_ceil_mode_matches_onnxruntime_and_central_differences():
    """The windows that overhang the end are Lp norms of the values they hold, as in
    onnxruntime and the node suite's LpPool data (onnx's reference evaluator and torch scale
    such a window up by kernel size / values held)."""
    feeds = {"X": RNG.standard_normal((1, 2, 5, 6)).astype(np.float32)}
    attrs = {"p": 3, "kernel_shape": [2, 3], "strides": [2, 2], "ceil_mode": 1}
    model = onnx_model("LpPool", feeds, **attrs)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)[0]
    graph = gc.load_onnx(model)
    np.testing.assert_allclose(gc.compile(graph).run(feeds)["Y"], want, rtol=1e-5, atol=1e-6)
    assert want.shape == (1, 2, 3, 3)
    assert gc.check_grads(graph, "Y", ["X"], feeds, tol=1e-6) < 1e-6


@pytest.mark.parametrize("p", [2, 3])
def test_lp_pool_window_of_zeros_has_finite_gradients(p):
    """Zeros (a relu's output, say) in a whole window: value 0 and gradient 0 there, not NaN."""
    x = RNG.standard_normal((1, 1, 4, 4)).astype(np.float32)
    x[0, 0, :2, :2] = 0.0
    feeds = {"X": x}
    y, grads, _ = value_and_grads(onnx_model("LpPool", feeds, p=p, kernel_shape=[2, 2],
                                             strides=[2, 2]), feeds, ["X"])
    assert y[0, 0, 0, 0] == 0.0 and np.all(np.isfinite(grads["X"]))
    assert np.all(grads["X"][0, 0, :2, :2] == 0.0) and np.any(grads["X"][0, 0, 2:, 2:] != 0)


def test_lp_pool_refuses_p_below_one():
    feeds = {"X": np.ones((1, 1, 4, 4), np.float32)}
    with pytest.raises(GraphcError, match="the_node: LpPool: p must be >= 1, got 0"):
        gc.load_onnx(onnx_model("LpPool", feeds, p=0, kernel_shape=[2, 2]))


@pytest.mark.parametrize("image, block, strides, pads, dilations", [
    ((5, 5), (2, 2), (1, 1), (0, 0, 0, 0), (1, 1)),
    ((6, 7), (3, 2), (2, 1), (1, 0, 1, 0), (1, 2)),
    ((4, 6), (2, 3), (1, 2), (1, 1, 1, 1), (2, 1)),
])
def test_col2im_matches_torch_fold_values_and_gradients(image, block, strides, pads,
                                                        dilations):
    """torch's fold pads both ends alike, so the cases do too."""
    blocks = [(image[a] + pads[a] + pads[2 + a] - dilations[a] * (block[a] - 1) - 1)
              // strides[a] + 1 for a in range(2)]
    feeds = {"input": RNG.standard_normal((2, 3 * block[0] * block[1],
                                           blocks[0] * blocks[1])).astype(np.float32)}
    model = onnx_model("Col2Im", feeds, {"image_shape": np.array(image, np.int64),
                                         "block_shape": np.array(block, np.int64)}, opset=18,
                       strides=list(strides), pads=list(pads), dilations=list(dilations))
    compare_with_torch(model, feeds, ["input"], lambda input: Fn.fold(
        input, image, block, dilation=dilations, padding=pads[:2], stride=strides))


def test_col2im_3d_matches_reference_and_central_differences():
    feeds = {"input": RNG.standard_normal((1, 2 * 4, 2 * 3 * 3)).astype(np.float32)}
    model = onnx_model("Col2Im", feeds, {"image_shape": np.array([3, 4, 3], np.int64),
                                         "block_shape": np.array([2, 1, 2], np.int64)},
                       opset=18, strides=[1, 2, 1], pads=[0, 1, 0, 0, 0, 1])
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    graph = gc.load_onnx(model)
    np.testing.assert_allclose(gc.compile(graph).run(feeds)["Y"], want, rtol=1e-5, atol=1e-6)
    assert gc.check_grads(graph, "Y", ["input"], feeds, tol=1e-6) < 1e-6


def test_col2im_refuses_a_block_count_that_does_not_fit():
    feeds = {"input": np.zeros((1, 4, 5), np.float32)}
    model = onnx_model("Col2Im", feeds, {"image_shape": np.array([3, 3], np.int64),
                                         "block_shape": np.array([2, 2], np.int64)}, opset=18)
    with pytest.raises(GraphcError, match="Col2Im: an image .* has 4 blocks.*has 5"):
        gc.load_onnx(model)


# --- CumProd, Det, SwiGLU ----------------------------------------------------------------------
def _torch_cumprod(x, axis, exclusive, reverse):
    y = x.flip(axis) if reverse else x
    if exclusive:
        ones = torch.ones_like(y.narrow(axis, 0, 1))
        y = torch.cat([ones, y.narrow(axis, 0, y.shape[axis] - 1)], axis)
    y = torch.cumprod(y, axis)
    return y.flip(axis) if reverse else y


@pytest.mark.parametrize("axis, exclusive, reverse",
                         list(itertools.product((0, -1), (0, 1), (0, 1))))
def test_cum_prod_matches_torch_values_and_gradients_with_zeros(axis, exclusive, reverse):
    x = RNG.uniform(0.5, 1.5, (5, 7)) * RNG.choice([-1, 1], (5, 7))
    x[1, 2] = x[3, 5] = 0.0  # the gradient through a zero needs no division
    feeds = {"x": x.astype(np.float32)}
    model = onnx_model("CumProd", feeds, {"axis": np.array(axis, np.int64)}, opset=26,
                       exclusive=exclusive, reverse=reverse)
    compare_with_torch(model, feeds, ["x"], lambda x: _torch_cumprod(x, axis, exclusive,
                                                                     reverse))


@pytest.mark.parametrize("shape", [(1, 1), (3, 2, 2), (2, 3, 3), (2, 2, 4, 4)])
def test_det_matches_torch_values_and_gradients(shape):
    feeds = {"X": RNG.standard_normal(shape).astype(np.float32)}
    compare_with_torch(onnx_model("Det", feeds), feeds, ["X"], lambda X: torch.linalg.det(X))


def test_det_is_accurate_where_unpivoted_elimination_is_not():
    """A zero leading entry: elimination without pivoting divides by it."""
    x = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [4.0, -3.0, 8.0]], np.float32)
    got = gc.compile(gc.load_onnx(onnx_model("Det", {"X": x}))).run({"X": x})["Y"]
    np.testing.assert_allclose(got, np.linalg.det(x.astype(np.float64)), rtol=1e-6)


def test_det_refuses_matrices_above_4x4():
    with pytest.raises(GraphcError, match="the_node: Det: .*1x1 to 4x4.*got 5x5"):
        gc.load_onnx(onnx_model("Det", {"X": np.zeros((5, 5), np.float32)}))


@pytest.mark.parametrize("alpha", [1.0, 0.5, 1.702])
def test_swiglu_matches_torch_values_and_gradients(alpha):
    feeds = {"A": RNG.standard_normal((3, 8)).astype(np.float32),
             "B": RNG.standard_normal((3, 8)).astype(np.float32)}
    compare_with_torch(onnx_model("SwiGLU", feeds, opset=28, alpha=alpha), feeds, ["A", "B"],
                       lambda A, B: A * torch.sigmoid(alpha * A) * B)


# --- ReverseSequence and Compress --------------------------------------------------------------
@pytest.mark.parametrize("batch_axis, time_axis", [(0, 1), (1, 0)])
def test_reverse_sequence_matches_reference_and_central_differences(batch_axis, time_axis):
    shape = (3, 5, 2) if batch_axis == 0 else (5, 3, 2)
    feeds = {"x": RNG.standard_normal(shape).astype(np.float32),
             "sequence_lens": np.array([5, 1, 3], np.int64)}
    model = onnx_model("ReverseSequence", feeds, opset=28, batch_axis=batch_axis,
                       time_axis=time_axis)
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    graph = gc.load_onnx(model)
    np.testing.assert_array_equal(gc.compile(graph).run(feeds)["Y"], want)
    assert gc.check_grads(graph, "Y", ["x"], feeds, tol=1e-6) < 1e-6


def test_reverse_sequence_refuses_a_length_past_the_time_axis_at_run_time():
    feeds = {"x": np.zeros((2, 4), np.float32), "sequence_lens": np.array([2, 5], np.int64)}
    graph = gc.load_onnx(onnx_model("ReverseSequence", feeds, opset=28, batch_axis=0,
                                    time_axis=1))
    with pytest.raises(GraphcError, match="outside"):
        gc.interpret(graph, feeds)


def test_compress_refuses_a_condition_computed_by_the_graph():
    nodes = [helper.make_node("Greater", ["c", "zero"], ["keep"]),
             helper.make_node("Compress", ["x", "keep"], ["Y"], name="the_node", axis=0)]
    graph = helper.make_graph(
        nodes, "compress", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 2]),
                            helper.make_tensor_value_info("c", TensorProto.FLOAT, [3])],
        [helper.make_empty_tensor_value_info("Y")],
        [numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    model = typed(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    with pytest.raises(GraphcError, match="Compress: operand 1 must be known at import time"):
        gc.load_onnx(model)


def test_compress_with_a_constant_condition_has_gather_gradients():
    feeds = {"x": RNG.standard_normal((4, 3)).astype(np.float32)}
    model = onnx_model("Compress", feeds, {"condition": np.array([True, False, True])},
                       opset=18, axis=1)
    graph = gc.load_onnx(model)
    np.testing.assert_array_equal(gc.compile(graph).run(feeds)["Y"], feeds["x"][:, [0, 2]])
    assert gc.check_grads(graph, "Y", ["x"], feeds, tol=1e-6) < 1e-6


# --- the training ops (ai.onnx.preview.training) -----------------------------------------------
_TRAINING = {  # op: (attributes, number of accumulator groups)
    "Momentum": ({"alpha": 0.9, "beta": 0.3, "mode": "nesterov", "norm_coefficient": 0.01}, 1),
    "Adagrad": ({"decay_factor": 0.2, "epsilon": 1e-4, "norm_coefficient": 0.05}, 1),
    "Adam": ({"alpha": 0.8, "beta": 0.7, "epsilon": 1e-3, "norm_coefficient": 0.02,
              "norm_coefficient_post": 0.1}, 2),
}


@pytest.mark.parametrize("op, step", list(itertools.product(sorted(_TRAINING), (0, 3))))
def test_training_ops_match_onnx_reference(op, step):
    """Two tensors updated by one node, at T = 0 (no bias correction) and T = 3."""
    attrs, accumulators = _TRAINING[op]
    shapes = [(3,), (2, 2)]
    arrays = {"R": np.array(0.1, np.float32), "T": np.array(step, np.int64)}
    for group in ["X", "G", "V", "H"][:2 + accumulators]:
        for k, shape in enumerate(shapes):
            arrays[f"{group}{k}"] = RNG.uniform(0.1, 1.0, shape).astype(np.float32)
    outs = [f"out{k}" for k in range(len(arrays) - 2 - len(shapes))]
    node = helper.make_node(op, list(arrays), outs, domain="ai.onnx.preview.training", **attrs)
    graph = helper.make_graph([node], "training", [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for n, a in arrays.items()], [helper.make_empty_tensor_value_info(o) for o in outs])
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("ai.onnx.preview.training", 1)])
    want = ReferenceEvaluator(model).run(None, arrays)
    b = gc.GraphBuilder("training")
    inputs = [b.input(n, a.shape, "i64" if a.dtype == np.int64 else "f32")
              for n, a in arrays.items()]
    results = getattr(training_ops, op)(*inputs, **attrs)
    got = gc.compile(b.build(dict(zip(outs, results)))).run(arrays)
    for name, expected in zip(outs, want):
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)
