"""ONNX's indexing, scatter, scan, ranking and Einsum ops through gc.load_onnx: forward against
onnxruntime, gradients against torch autograd, and the errors for what graphc cannot take.

Input: one-node models built here with onnx.helper (graphc/onnx/index_ops.py and einsum_ops.py
import them), each followed by a fixed weighting and a sum so that it has a scalar loss. Output:
compiled graphc values equal onnxruntime's (and NumPy's where onnxruntime leaves the result
open); compiled gradients of the loss w.r.t. every float input equal torch's; bad input is a
GraphcError naming the node, also when the compiled step finds it at run time.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper, shape_inference

import graphc as gc

OPSET = 18
RNG = np.random.default_rng(7)


def _info(name, array):
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype),
                                         array.shape)


def model(op_type, feeds, static=None, n_outputs=1, loss=True, order=None, **attrs):
    """op_type(operands in `order`, or feeds then static) -> y0, y1...; with `loss`, also
    loss = sum(y0 * w) for fixed weights w. `static` operands (counts, axes) are
    initializers."""
    static = static or {}
    names = order or [*feeds, *static]
    outs = [f"y{k}" for k in range(n_outputs)]
    nodes = [helper.make_node(op_type, names, outs, name="the_node", **attrs)]
    outputs = [helper.make_empty_tensor_value_info(o) for o in outs]
    if loss:
        nodes += [helper.make_node("Mul", ["y0", "w"], ["weighted"]),
                  helper.make_node("ReduceSum", ["weighted"], ["loss"], keepdims=0)]
        outputs.append(helper.make_tensor_value_info("loss", 1, []))
    graph = helper.make_graph(nodes, "indexing", [_info(n, a) for n, a in feeds.items()],
                              outputs, [numpy_helper.from_array(np.asarray(a), n)
                                        for n, a in static.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    if loss:  # the weights take y0's shape, known once onnxruntime has run the node alone
        y0 = ort_run(model(op_type, feeds, static, n_outputs, False, order, **attrs), feeds)[0]
        w = RNG.uniform(0.5, 1.5, y0.shape).astype(y0.dtype)
        m.graph.initializer.append(numpy_helper.from_array(w, "w"))
    m = shape_inference.infer_shapes(m)  # the outputs' types
    for out in m.graph.output:  # inference failed (a node graphc must refuse): any f32 type
        if not out.type.HasField("tensor_type"):
            out.CopyFrom(helper.make_tensor_value_info(out.name, 1, []))
    return m


def ort_run(m, feeds):
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def compiled(m, feeds, n_outputs=1):
    graph = gc.load_onnx(m)
    out = gc.compile(graph).run(feeds)
    return [out[f"y{k}"] for k in range(n_outputs)]


def compiled_grads(m, feeds):
    """d loss / d every float feed, from graphc's compiled backward pass."""
    graph = gc.load_onnx(m)
    wrt = [n for n, a in feeds.items() if a.dtype.kind == "f"]
    _, grads = gc.compile_value_and_grad(graph, "loss", wrt).run(feeds)
    return grads, numpy_helper.to_array(next(t for t in m.graph.initializer if t.name == "w"))


def torch_grads(fn, feeds, w):
    """d sum(fn(tensors) * w) / d every float feed, by torch autograd (float64)."""
    ts = {n: torch.tensor(a, dtype=torch.float64 if a.dtype.kind == "f" else None,
                          requires_grad=a.dtype.kind == "f") for n, a in feeds.items()}
    (fn(**ts) * torch.tensor(w, dtype=torch.float64)).sum().backward()
    return {n: t.grad.numpy() for n, t in ts.items() if t.requires_grad}


def check(op_type, feeds, torch_fn=None, static=None, n_outputs=1, order=None, **attrs):
    """Forward (every output) against onnxruntime; gradients of y0 against torch_fn's."""
    m = model(op_type, feeds, static, n_outputs, order=order, **attrs)
    want = ort_run(model(op_type, feeds, static, n_outputs, False, order, **attrs), feeds)
    for got, expected in zip(compiled(m, feeds, n_outputs), want):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    if torch_fn is not None:
        grads, w = compiled_grads(m, feeds)
        expected = torch_grads(torch_fn, feeds, w)
        assert expected and set(expected) == set(grads)
        for name, g in expected.items():
            np.testing.assert_allclose(grads[name], g, rtol=1e-4, atol=1e-5, err_msg=name)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# --- GatherND ----------------------------------------------------------------------------------
def test_gather_nd_rows_and_elements_with_negative_indices():
    data = f32(4, 3, 5)
    for idx in (np.array([[1], [-1], [1]]), np.array([[[0, 2], [-4, -1]], [[3, 0], [1, 1]]])):
        parts = idx.shape[-1]
        check("GatherND", {"data": data, "indices": idx},
              lambda data, indices, k=parts: data[tuple(indices[..., j] for j in range(k))])


def test_gather_nd_batch_dims():
    data, idx = f32(2, 3, 4, 2), np.array([[[2, 1], [0, 3]], [[1, 1], [-1, 0]]])

    def fn(data, indices):
        batch = torch.arange(2).reshape(2, 1)
        return data[batch, indices[..., 0], indices[..., 1]]
    check("GatherND", {"data": data, "indices": idx}, fn, batch_dims=1)


# --- ScatterND and ScatterElements -------------------------------------------------------------
def _flat_scatter(reduce):
    """torch's ScatterND for one index component: scatter_reduce over the first axis."""
    def fn(data, indices, updates):
        rows = indices[..., 0] % data.shape[0]
        flat = updates.reshape(rows.numel(), -1)
        index = rows.reshape(-1, 1).expand_as(flat)
        out = data.reshape(data.shape[0], -1).scatter_reduce(0, index, flat, reduce=reduce,
                                                             include_self=True)
        return out.reshape(data.shape)
    return fn


def _index_put(accumulate):
    def fn(data, indices, updates):
        parts = tuple(indices[..., j] for j in range(indices.shape[-1]))
        return data.index_put(parts, updates, accumulate=accumulate)
    return fn


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd_rows(reduction):
    idx = np.array([[2], [0], [-1]]) if reduction == "none" else np.array([[2], [0], [2], [-1]])
    feeds = {"data": f32(5, 3, 2), "indices": idx, "updates": f32(len(idx), 3, 2)}
    fn = {"none": _index_put(False), "add": _index_put(True), "mul": _flat_scatter("prod"),
          "max": _flat_scatter("amax"), "min": _flat_scatter("amin")}[reduction]
    check("ScatterND", feeds, fn, reduction=reduction)


def test_scatter_nd_elements_of_a_matrix():
    feeds = {"data": f32(3, 4), "indices": np.array([[0, 3], [2, -4], [1, 1]]),
             "updates": f32(3)}
    check("ScatterND", feeds, _index_put(False))
    check("ScatterND", feeds, _index_put(True), reduction="add")


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd_on_integers_is_exact(reduction):
    feeds = {"data": RNG.integers(-2**40, 2**40, (4, 3)), "indices": np.array([[3], [1], [3]]),
             "updates": RNG.integers(-2**40, 2**40, (3, 3))}
    if reduction == "none":
        feeds["indices"] = np.array([[3], [1], [0]])
    if reduction == "mul":
        feeds = {k: v % 1000 for k, v in feeds.items()}
    m = model("ScatterND", feeds, loss=False, reduction=reduction)
    np.testing.assert_array_equal(compiled(m, feeds)[0], ort_run(m, feeds)[0])


_TORCH_REDUCE = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, 1])
def test_scatter_elements(reduction, axis):
    data = f32(4, 5)
    if axis == 0:  # indices smaller than data off the axis
        idx = np.array([[1, 3, 0], [2, -2, 1]]) if reduction == "none" else \
            np.array([[1, 3, 0], [1, -1, 0]])
    else:
        idx = np.array([[4, 0], [1, 2], [0, 3]]) if reduction == "none" else \
            np.array([[4, 4], [1, 2], [-5, 0]])
    updates = f32(*idx.shape)

    def fn(data, indices, updates):
        index = indices % data.shape[axis]
        if reduction == "none":
            return data.scatter(axis, index, updates)
        return data.scatter_reduce(axis, index, updates, reduce=_TORCH_REDUCE[reduction],
                                   include_self=True)
    check("ScatterElements", {"data": data, "indices": idx, "updates": updates}, fn,
          axis=axis, reduction=reduction)


def test_scatter_gradient_with_duplicates_is_the_mean_graphc_writes():
    """ONNX leaves duplicate indices with reduction none open; graphc writes their mean."""
    feeds = {"data": f32(3, 2), "indices": np.array([[1], [1]]), "updates": f32(2, 2)}
    graph = gc.load_onnx(model("ScatterND", feeds))
    y = gc.compile(graph).run(feeds)["y0"]
    np.testing.assert_allclose(y[1], feeds["updates"].mean(0), rtol=1e-6)
    assert gc.check_grads(graph, "loss", ["data", "updates"], feeds) < 1e-6


# --- CumSum, Trilu, OneHot, Range --------------------------------------------------------------
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum(exclusive, reverse):
    x = f32(3, 37)

    def fn(x):
        y = torch.flip(x, [1]) if reverse else x
        s = torch.cumsum(y, 1)
        s = s - y if exclusive else s
        return torch.flip(s, [1]) if reverse else s
    check("CumSum", {"x": x}, fn, static={"axis": np.array(-1)}, exclusive=exclusive,
          reverse=reverse)
    ints = {"x": RNG.integers(-9, 9, (37, 2))}
    m = model("CumSum", ints, static={"axis": np.array(0)}, loss=False, exclusive=exclusive,
              reverse=reverse)
    np.testing.assert_array_equal(compiled(m, ints)[0], ort_run(m, ints)[0])


@pytest.mark.parametrize("upper", [0, 1])
def test_trilu(upper):
    x = f32(2, 4, 6)
    check("Trilu", {"x": x}, lambda x: (torch.triu if upper else torch.tril)(x, -1),
          static={"k": np.array(-1)}, upper=upper)


def test_one_hot_gradient_reaches_values():
    feeds = {"indices": np.array([[0, 3], [-1, 9]]), "values": np.float32([-0.5, 2.0])}

    def fn(indices, values):
        hot = torch.nn.functional.one_hot(indices % 4, 4).bool() & (indices < 4)[..., None]
        return torch.where(hot.transpose(1, 2), values[1], values[0])
    check("OneHot", feeds, fn, static={"depth": np.float32(4)},
          order=["indices", "depth", "values"], axis=1)


def test_range_is_folded_from_static_operands():
    static = {"start": np.float32(1.0), "limit": np.float32(2.9), "delta": np.float32(0.25)}
    m = model("Range", {}, static=static, loss=False)
    np.testing.assert_allclose(compiled(m, {})[0], ort_run(m, {})[0])


# --- TopK --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, k", [(16, 3), (5, 3), (6, 6)])  # picking, then ranking
@pytest.mark.parametrize("largest", [0, 1])
def test_top_k_values_and_indices(n, k, largest):
    x = (RNG.permutation(2 * n * 3).reshape(2, n, 3)[:, :, :] * 0.37).astype(np.float32)
    check("TopK", {"x": x}, lambda x: torch.topk(x, k, 1, largest=bool(largest))[0],
          static={"K": np.array([k])}, n_outputs=2, axis=1, largest=largest)


@pytest.mark.parametrize("k", [1, 3, 8])  # picking, picking, ranking
def test_top_k_ties_take_the_lower_index_and_nan_ranks_as_inf(k):
    x = np.float32([[2, np.nan, 5, 5, 1, 5, np.inf, 2, 0, 5, 5, 5, 1]])
    m = model("TopK", {"x": x}, static={"K": np.array([k])}, n_outputs=2, loss=False)
    values, indices = compiled(m, {"x": x}, 2)
    order = [1, 6, 2, 3, 5, 9, 10, 11][:k]  # NaN and inf (as inf: by index), then the 5s
    np.testing.assert_array_equal(indices, [order])
    np.testing.assert_array_equal(values, x[:, order])
    ints = {"x": np.array([[3, 1, 3, 2, 1, 3, 0, 2, 3]])}
    m = model("TopK", ints, static={"K": np.array([k])}, n_outputs=2, loss=False, largest=0)
    for got, want in zip(compiled(m, ints, 2), ort_run(m, ints)):
        np.testing.assert_array_equal(got, want)


# --- Einsum ------------------------------------------------------------------------------------
@pytest.mark.parametrize("equation, shapes", [
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("bij,jk->bik", [(2, 3, 4), (4, 5)]),
    ("...ij,...jk", [(2, 1, 3, 4), (1, 5, 4, 2)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ii->i", [(4, 4)]),
    ("bii", [(2, 3, 3)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("bnd,bmd->nm", [(2, 3, 4), (2, 5, 4)]),
])
def test_einsum(equation, shapes):
    feeds = {f"x{k}": f32(*s) for k, s in enumerate(shapes)}
    check("Einsum", feeds, lambda **xs: torch.einsum(equation, *xs.values()), equation=equation)


def test_einsum_on_integers_is_exact():
    feeds = {"a": RNG.integers(-50, 50, (3, 4)), "b": RNG.integers(-50, 50, (4, 2))}
    m = model("Einsum", feeds, loss=False, equation="ij,jk->ik")
    np.testing.assert_array_equal(compiled(m, feeds)[0], feeds["a"] @ feeds["b"])


# --- what graphc refuses -----------------------------------------------------------------------
def _raises(m, feeds, match):
    with pytest.raises(gc.GraphcError, match=match) as info:
        graph = gc.load_onnx(m)
        gc.interpret(graph, feeds)
    assert "the_node" in str(info.value)


def test_operands_that_must_be_static_are_named():
    x = f32(6)
    _raises(model("TopK", {"x": x, "K": np.array([2])}, n_outputs=2, loss=False), {},
            "TopK: operand 1 must be known at import time")
    scalars = {n: np.float32(v) for n, v in (("start", 0), ("limit", 3), ("delta", 1))}
    _raises(model("Range", scalars, loss=False), {}, "Range: operand 0 must be known")
    _raises(model("TopK", {"x": x}, static={"K": np.array([7])}, n_outputs=2, loss=False), {},
            r"K = 7 is outside \[0, 6\]")


def test_einsum_refusals():
    _raises(model("Einsum", {"x": f32(3, 3)}, loss=False, equation="ii->ii"), {},
            "repeats a letter")
    _raises(model("Einsum", {"x": f32(3, 4)}, loss=False, equation="ij->k"), {},
            "name no input axis")


@pytest.mark.parametrize("op_type, feeds", [
    ("GatherND", {"data": f32(3, 4), "indices": np.array([[0, 1], [0, 4]])}),
    ("ScatterND", {"data": f32(3, 4), "indices": np.array([[3]]), "updates": f32(1, 4)}),
    ("ScatterElements", {"data": f32(3, 4), "indices": np.array([[-4, 0]]),
                         "updates": f32(1, 2)}),
])
def test_indices_out_of_range_are_errors_interpreted_and_compiled(op_type, feeds):
    graph = gc.load_onnx(model(op_type, feeds, loss=False))
    with pytest.raises(gc.GraphcError, match="outside"):
        gc.interpret(graph, feeds)
    with pytest.raises(gc.GraphcError, match="outside|out of range") as info:
        gc.compile(graph).run(feeds)
    assert "the_node" in str(info.value)
