"""Convolution and pooling against direct NumPy loops (tests/op_cases_nn.py), compiled and
interpreted, with gradients by central differences on tiny shapes.

Covers asymmetric pads, strides, dilations, groups and depthwise convolution, 1-D, 2-D and 3-D
pooling with ceil_mode and count_include_pad, MaxPool's Indices, the ONNX auto_pad helper, and (where PyTorch is installed) gradients against
an independent framework.
"""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

import graphc as gc
from tests.conv_loops import conv_loop, pool_loop

CONVS = {  # name: (x shape, w shape, bias, attrs)
    "plain": ((2, 3, 6, 6), (4, 3, 3, 3), True, {}),
    "asym_pads": ((1, 2, 5, 7), (3, 2, 3, 2), True, {"pads": (2, 0, 1, 3)}),
    "strides_dilation": ((2, 2, 9, 8), (2, 2, 3, 3), False,
                         {"strides": (2, 3), "dilations": (2, 1), "pads": (1, 2, 0, 1)}),
    "groups": ((1, 6, 5, 5), (4, 3, 3, 3), True, {"group": 2, "pads": (1, 1, 1, 1)}),
    "depthwise": ((2, 4, 6, 5), (4, 1, 3, 3), True, {"group": 4, "strides": (2, 1),
                                                     "pads": (0, 1, 2, 1)}),
    "depthwise_multiplier": ((1, 2, 5, 5), (6, 1, 2, 2), False, {"group": 2, "dilations": (2, 2)}),
    "pointwise": ((3, 5, 4, 4), (2, 5, 1, 1), True, {}),
}


def _conv_graph(xs, ws, bias, attrs, dtype="f64"):
    b = gc.GraphBuilder("conv")
    x = b.input("x", xs, dtype)
    w = b.input("w", ws, dtype)
    bb = b.input("b", (ws[0],), dtype) if bias else None
    y = gc.conv2d(x, w, bb, **attrs)
    r = gc.constant(b, np.random.default_rng(1).uniform(0.5, 1.5, y.shape), dtype)
    return b.build({"y": y, "loss": gc.sum(y * r)})


def _feeds(xs, ws, bias, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {"x": rng.standard_normal(xs).astype(dtype), "w": rng.standard_normal(ws).astype(dtype)}
    if bias:
        feeds["b"] = rng.standard_normal(ws[0]).astype(dtype)
    return feeds


@pytest.mark.parametrize("name", sorted(CONVS))
def test_conv_matches_direct_loop_interpreted_and_compiled(name):
    xs, ws, bias, attrs = CONVS[name]
    feeds = _feeds(xs, ws, bias, np.float32)
    want = conv_loop(feeds["x"], feeds["w"], feeds.get("b"), **attrs)
    graph = _conv_graph(xs, ws, bias, attrs, "f32")
    np.testing.assert_allclose(gc.interpret(graph, feeds)["y"], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gc.compile(graph).run(feeds)["y"], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CONVS))
def test_conv_gradients_by_central_differences(name):
    xs, ws, bias, attrs = CONVS[name]
    graph = _conv_graph(xs, ws, bias, attrs)
    gc.check_grads(graph, "loss", ["x", "w"] + (["b"] if bias else []),
                   _feeds(xs, ws, bias), tol=1e-6)


@pytest.mark.parametrize("name", sorted(CONVS))
def test_compiled_conv_gradients_match_interpreter(name):
    xs, ws, bias, attrs = CONVS[name]
    graph = gc.grad(_conv_graph(xs, ws, bias, attrs, "f32"), "loss",
                    ["x", "w"] + (["b"] if bias else []))
    feeds = _feeds(xs, ws, bias, np.float32)
    got, want = gc.compile(graph).run(feeds), gc.interpret(graph, feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4, err_msg=k)


POOLS = {  # name: (x shape, kind, attrs)
    "max_2x2": ((2, 3, 6, 6), "max", {"kernel_shape": (2, 2), "strides": (2, 2)}),
    "max_overlap_pads": ((1, 2, 5, 6), "max", {"kernel_shape": (3, 3), "strides": (2, 1),
                                               "pads": (1, 0, 1, 2)}),
    "max_ceil_dilated": ((1, 1, 7, 7), "max", {"kernel_shape": (2, 3), "strides": (2, 2),
                                               "dilations": (2, 1), "ceil_mode": True}),
    "avg_exclude_pad": ((2, 2, 5, 5), "avg", {"kernel_shape": (3, 3), "strides": (2, 2),
                                              "pads": (1, 1, 1, 1)}),
    "avg_include_pad_asym": ((1, 2, 6, 5), "avg", {"kernel_shape": (2, 3), "strides": (1, 2),
                                                   "pads": (0, 1, 1, 2),
                                                   "count_include_pad": True}),
    "avg_ceil": ((1, 1, 5, 7), "avg", {"kernel_shape": (3, 2), "strides": (3, 2),
                                       "ceil_mode": True}),
    "max_1d": ((2, 2, 9), "max", {"kernel_shape": (3,), "strides": (2,), "pads": (1, 1),
                                  "ceil_mode": True}),
    "max_3d_dilated": ((1, 2, 5, 4, 6), "max", {"kernel_shape": (2, 2, 3), "strides": (2, 1, 2),
                                                "dilations": (2, 1, 1), "pads": (0, 1, 1, 1, 0, 1)}),
    "avg_3d_include_ceil": ((1, 1, 5, 5, 4), "avg", {"kernel_shape": (3, 2, 2),
                                                     "strides": (2, 2, 3), "pads": (1, 0, 0, 1, 1, 0),
                                                     "ceil_mode": True, "count_include_pad": True}),
}


def _pool_graph(xs, kind, attrs, dtype="f64"):
    b = gc.GraphBuilder("pool")
    x = b.input("x", xs, dtype)
    y = (gc.max_pool if kind == "max" else gc.avg_pool)(x, **attrs)
    r = gc.constant(b, np.random.default_rng(2).uniform(0.5, 1.5, y.shape), dtype)
    return b.build({"y": y, "loss": gc.sum(y * r)})


def _distinct(shape, dtype=np.float64, seed=0):
    """All elements distinct (no ties for max)."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1).astype(dtype)


@pytest.mark.parametrize("name", sorted(POOLS))
def test_pool_matches_direct_loop(name):
    xs, kind, attrs = POOLS[name]
    x = _distinct(xs, np.float32)
    want = pool_loop(x, kind=kind, **attrs)
    graph = _pool_graph(xs, kind, attrs, "f32")
    np.testing.assert_allclose(gc.interpret(graph, {"x": x})["y"], want, rtol=1e-6)
    np.testing.assert_allclose(gc.compile(graph).run({"x": x})["y"], want, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(POOLS))
def test_pool_gradients(name):
    xs, kind, attrs = POOLS[name]
    gc.check_grads(_pool_graph(xs, kind, attrs), "loss", ["x"], {"x": _distinct(xs)}, tol=1e-6)
    graph = gc.grad(_pool_graph(xs, kind, attrs, "f32"), "loss", ["x"])
    x = _distinct(xs, np.float32)
    np.testing.assert_allclose(gc.compile(graph).run({"x": x})["x"],
                               gc.interpret(graph, {"x": x})["x"], rtol=1e-5, atol=1e-6)


def test_max_pool_gradient_is_shared_on_ties():
    b = gc.GraphBuilder()
    x = b.input("x", (1, 1, 2, 2), "f64")
    g = gc.grad(b.build({"y": gc.sum(gc.max_pool2d(x, 2, 2))}), "y", ["x"])
    got = gc.interpret(g, {"x": np.array([[[[1.0, 3.0], [3.0, 0.0]]]])})["x"]
    np.testing.assert_array_equal(got, [[[[0, 0.5], [0.5, 0]]]])


def test_global_avg_pool_is_the_spatial_mean():
    b = gc.GraphBuilder()
    x = b.input("x", (2, 3, 4, 5), "f32")
    g = b.build({"y": gc.global_avg_pool(x)})
    xv = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(gc.compile(g).run({"x": xv})["y"],
                               xv.mean(axis=(2, 3), keepdims=True), rtol=1e-5)


@pytest.mark.parametrize("mode, want", [("SAME_UPPER", (1, 0, 2, 1)), ("SAME_LOWER", (2, 1, 1, 0)),
                                        ("VALID", (0, 0, 0, 0))])
def test_auto_pads_follow_onnx(mode, want):
    # H=5, k=4, s=2: 3 outputs, 3 pad rows (1 + 2); W=7, k=2, s=2: 4 outputs, 1 pad column
    assert gc.auto_pads((5, 7), (4, 2), (2, 2), (1, 1), mode) == want


def test_conv_shape_errors_name_the_user_line():
    b = gc.GraphBuilder()
    x, w = b.input("x", (1, 3, 4, 4)), b.input("w", (2, 3, 5, 5))
    with pytest.raises(gc.ShapeError, match=r"test_conv.py:\d+: .*does not fit"):
        gc.conv2d(x, w)


def test_gradients_match_pytorch():
    """Against PyTorch's gradients, recorded by tests/data/make_conv_torch_data.py."""
    data = np.load(pathlib.Path(__file__).parent / "data" / "torch_conv_depthwise.npz")
    feeds = {k: data[k] for k in ("x", "w", "b")}
    attrs = {"pads": tuple(data["pads"].tolist()), "strides": tuple(data["strides"].tolist()),
             "group": int(data["group"])}
    b = gc.GraphBuilder()
    x, w, bb = (b.input(k, feeds[k].shape, "f64") for k in ("x", "w", "b"))
    loss = gc.sum(gc.max_pool2d(gc.conv2d(x, w, bb, **attrs), 2, 1) *
                  gc.constant(b, data["r"], "f64"))
    grads = gc.interpret(gc.grad(b.build({"loss": loss}), "loss", ["x", "w", "b"]), feeds)
    for k in "xwb":
        np.testing.assert_allclose(grads[k], data[f"grad_{k}"], rtol=1e-10, atol=1e-12,
                                   err_msg=k)


@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices_match_direct_loop(storage_order):
    attrs = {"kernel_shape": (2, 3), "strides": (2, 2), "pads": (1, 1, 0, 1), "ceil_mode": True}
    x = _distinct((2, 3, 5, 6), np.float32)
    b = gc.GraphBuilder("indices")
    xi = b.input("x", x.shape, "f32")
    graph = b.build({"i": gc.max_pool_indices(xi, storage_order=storage_order, **attrs)})
    want = pool_loop(x, kind="index", storage_order=storage_order, **attrs)
    np.testing.assert_array_equal(gc.interpret(graph, {"x": x})["i"], want)
    np.testing.assert_array_equal(gc.compile(graph).run({"x": x})["i"], want)


def _ops_after_pipeline(graph, grads):
    from graphc.pipeline import passes_for, run_pipeline
    lowered = run_pipeline(graph, passes_for(grads=grads))
    return [m.op for n in lowered.nodes
            for m in (n.attrs["body"].nodes if n.op == "fused" else [n])]


def test_tiling_pool_lowers_to_strided_reads_not_window_gathers():
    """2x2/stride-2 pooling of an even input is a reshape + transpose both ways; a pool whose
    windows overlap keeps windows (forward) and col2im (backward)."""
    b = gc.GraphBuilder()
    x = b.input("x", (2, 3, 8, 6))
    ops = _ops_after_pipeline(b.build({"y": gc.sum(gc.max_pool2d(x, 2, 2))}), ("y", ["x"]))
    assert "windows" not in ops and "col2im" not in ops
    b = gc.GraphBuilder()
    x = b.input("x", (2, 3, 8, 6))
    ops = _ops_after_pipeline(b.build({"y": gc.sum(gc.max_pool2d(x, 3, 2))}), ("y", ["x"]))
    assert "windows" in ops and "col2im" in ops


class _Recorder:
    """An index-map emitter that writes expressions as text and counts the ops it is asked for."""

    def __init__(self):
        self.calls = []

    def read_if(self, cond, read, safe_read, default):
        self.calls.append("read_if")
        return f"read_if({cond}, {read()}, {safe_read()}, {default})"

    def __getattr__(self, op):
        def emit(*args):
            self.calls.append(op)
            return f"{op}({', '.join(map(str, args))})"
        return emit


def _windows_reads(pads):
    from graphc.ops.registry import get_op
    from graphc.types import TensorType
    x = TensorType((1, 1, 6, 6), "f32")
    attrs = {"kernel": (3, 3), "strides": (1, 1), "pads": pads, "dilations": (1, 1),
             "value": 0.0}
    (out,) = get_op("windows").infer([x], attrs)
    e = _Recorder()
    read = get_op("windows").index_map(lambda i, idx: f"x{list(idx)}", e, ("n", "c", "h", "w",
                                       "i", "j"), [x], out, **attrs)
    return read, e.calls


def test_windows_inside_the_input_read_x_without_bounds_checks():
    read, calls = _windows_reads((0, 0, 0, 0))
    assert read.startswith("x[") and not {"select", "min", "max"} & set(calls)
    # padding: a read guarded by the bounds (a masked load when vectorised); NumPy's
    # evaluation reads through the clamped index instead
    read, calls = _windows_reads((1, 0, 1, 0))
    assert read.startswith("read_if(") and {"min", "max"} <= set(calls)
