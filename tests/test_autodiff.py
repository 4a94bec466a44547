"""Autodiff on the seeds' worked examples, higher order, and the driver's duties.

The seeds: C(t1, t2) = t1 t2 + tanh t1 (seed 000), g(x) = (4x + 1)^2 and the sigmoid built
from exp, add and div (seed 001), the one-hidden-layer MLP with cross-entropy and weight decay of
section 6.5.7 (seed 003) against gradients derived by hand. The driver: fan-out sums,
un-broadcasting, stop_gradient, zeros for unreachable inputs, second derivatives, a
Hessian-vector product, and every missing bprop reported at once with its location.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import graphc as gc
from graphc.ops import registry
from graphc.ops.registry import OpDef

F64 = np.float64


def grads(graph, output, wrt, feeds):
    """d output / d wrt by the interpreter, and the same gradient graph compiled."""
    g = gc.grad(graph, output, wrt)
    want = gc.interpret(g, feeds)
    got = gc.compile(g).run(feeds)
    for name in wrt:
        tol = 1e-5 if want[name].dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got[name], want[name], rtol=tol, atol=tol,
                                   err_msg=f"compiled d/d{name}")
    return want


def scalar_graph(fn, names=("x",), dtype="f64", shape=()):
    b = gc.GraphBuilder()
    xs = [b.input(n, shape, dtype) for n in names]
    return b.build({"y": fn(*xs)})


# --- the seeds --------------------------------------------------------------------------------
@pytest.mark.parametrize("t1, t2", [(0.5, -1.5), (-2.0, 3.0), (0.0, 0.25)])
def test_seed_toy_cost_gradient(t1, t2):
    graph = scalar_graph(lambda a, b: a * b + gc.tanh(a), names=("t1", "t2"))
    feeds = {"t1": np.array(t1), "t2": np.array(t2)}
    out = grads(graph, "y", ["t1", "t2"], feeds)
    np.testing.assert_allclose(out["t1"], 1 - np.tanh(t1) ** 2 + t2, rtol=1e-14)
    np.testing.assert_allclose(out["t2"], t1, rtol=1e-14)


@pytest.mark.parametrize("square", [lambda c: c ** 2, lambda c: c * c], ids=["pow", "mul"])
@pytest.mark.parametrize("x, slope", [(1.0, 40.0), (-1.0, -24.0), (0.0, 8.0)])
def test_seed_square_of_affine(square, x, slope):
    """g(x) = (4x + 1)^2 has g'(x) = 8 (4x + 1): 40 at x = 1. At x = -1 the base is negative:
    pow's exponent gradient (log of the base) must not be built for a constant exponent."""
    graph = scalar_graph(lambda x: square(4 * x + 1))
    out = grads(graph, "y", ["x"], {"x": np.array(x)})
    assert out["x"] == pytest.approx(slope, rel=1e-14)


def test_seed_sigmoid_from_primitives_matches_sigmoid_op():
    b = gc.GraphBuilder()
    x = b.input("x", (7,), "f64")
    graph = b.build({"built": 1 / (1 + gc.exp(-x)), "op": gc.sigmoid(x)})
    feeds = {"x": np.linspace(-4, 4, 7)}
    fwd = gc.interpret(graph, feeds)
    np.testing.assert_allclose(fwd["built"], fwd["op"], rtol=1e-15)
    built, op = grads(graph, "built", ["x"], feeds), grads(graph, "op", ["x"], feeds)
    s = fwd["op"]
    np.testing.assert_allclose(built["x"], op["x"], rtol=1e-14)
    np.testing.assert_allclose(op["x"], s * (1 - s), rtol=1e-14)


def _mlp_graph(n, d, hidden, classes, lam, rng, dtype):
    b = gc.GraphBuilder("mlp")
    x, labels = b.input("x", (n, d), dtype), b.input("labels", (n,), "i64")
    w1 = b.param("w1", rng.normal(0, 0.5, (d, hidden)), dtype)
    w2 = b.param("w2", rng.normal(0, 0.5, (hidden, classes)), dtype)
    h = gc.relu(x @ w1)
    cost = gc.softmax_cross_entropy(h @ w2, labels) + lam * (gc.sum(w1 * w1) + gc.sum(w2 * w2))
    return b.build({"J": cost})


def _mlp_hand_gradients(x, labels, w1, w2, lam):
    """Section 6.5.7 by hand: G = (softmax(U2) - onehot) / N on the logits U2 = H W2."""
    u1 = x @ w1
    h = np.maximum(u1, 0)
    u2 = h @ w2
    p = np.exp(u2 - u2.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(w2.shape[1])[labels]
    g = (p - onehot) / len(labels)
    dw2 = h.T @ g + 2 * lam * w2
    g_prime = (g @ w2.T) * (u1 > 0)
    dw1 = x.T @ g_prime + 2 * lam * w1
    return {"w1": dw1, "w2": dw2}


@pytest.mark.parametrize("dtype, rtol", [("f64", 1e-12), ("f32", 1e-5)])
def test_seed_mlp_cross_entropy_weight_decay(dtype, rtol):
    rng = np.random.default_rng(3)
    graph = _mlp_graph(n=5, d=4, hidden=6, classes=3, lam=0.01, rng=rng, dtype=dtype)
    np_dtype = np.float64 if dtype == "f64" else np.float32
    feeds = {"x": rng.normal(size=(5, 4)).astype(np_dtype), "labels": np.array([0, 2, 1, 2, 0])}
    out = grads(graph, "J", ["w1", "w2"], feeds)
    inits = {k: v.astype(F64) for k, v in graph.initializers.items()}
    want = _mlp_hand_gradients(feeds["x"].astype(F64), feeds["labels"], inits["w1"],
                               inits["w2"], 0.01)
    for name in ("w1", "w2"):
        assert out[name].dtype == np_dtype
        np.testing.assert_allclose(out[name], want[name], rtol=rtol, atol=rtol * 1e-2)
    gc.check_grads(graph, "J", ["w1", "w2"], feeds, tol=1e-6)


# --- higher order -------------------------------------------------------------------------------
def test_second_derivative_of_tanh():
    graph = scalar_graph(gc.tanh, shape=(5,))
    second = gc.grad(gc.grad(graph, "y", ["x"]), "x", ["x"])
    x = np.linspace(-2, 2, 5)
    t = np.tanh(x)
    np.testing.assert_allclose(gc.interpret(second, {"x": x})["x"], -2 * t * (1 - t * t),
                               rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gc.compile(second).run({"x": x})["x"], -2 * t * (1 - t * t),
                               rtol=1e-12, atol=1e-15)


def test_hessian_vector_product_matches_finite_differences():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(3, 3))
    b = gc.GraphBuilder()
    x = b.input("x", (3, 1), "f64")
    f = gc.sum(gc.tanh(gc.constant(b, m) @ x) ** 2 + x * x * x)
    first = gc.grad(b.build({"f": f}), "f", ["x"])
    ext, t = gc.GraphBuilder.extend(first)
    v = ext.input("v", (3, 1), "f64")
    hvp = gc.grad(ext.build({"gv": gc.sum(t[first.outputs["x"].name] * v)}), "gv", ["x"])

    x0, v0, eps = rng.normal(size=(3, 1)), rng.normal(size=(3, 1)), 1e-5
    up, down = (gc.interpret(first, {"x": x0 + s * eps * v0})["x"] for s in (1, -1))
    numeric = (up - down) / (2 * eps)
    got = gc.interpret(hvp, {"x": x0, "v": v0})["x"]
    np.testing.assert_allclose(got, numeric, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gc.compile(hvp).run({"x": x0, "v": v0})["x"], got, rtol=1e-12)


# --- the driver's duties ---------------------------------------------------------------------
def test_stop_gradient_blocks_gradient():
    graph = scalar_graph(lambda x: gc.sum(x * gc.stop_gradient(x) + 3 * gc.stop_gradient(x)),
                         shape=(4,))
    x = np.array([0.5, -1.0, 2.0, 3.0])
    np.testing.assert_allclose(grads(graph, "y", ["x"], {"x": x})["x"], x)  # not 2x + 3


def test_fan_out_gradients_sum():
    """x feeds three uses: d/dx (x*x*x + tanh x) = 3x^2 + 1 - tanh^2 x."""
    graph = scalar_graph(lambda x: x * x * x + gc.tanh(x), shape=(4,))
    x = np.array([0.5, -1.0, 2.0, 0.0])
    np.testing.assert_allclose(grads(graph, "y", ["x"], {"x": x})["x"],
                               3 * x * x + 1 - np.tanh(x) ** 2, rtol=1e-14)


@pytest.mark.parametrize("bias_shape, reduce", [
    ((3,), lambda r: r.sum(0)), ((1, 3), lambda r: r.sum(0, keepdims=True)),
    ((2, 1), lambda r: r.sum(1, keepdims=True)), ((), lambda r: r.sum())],
    ids=["row", "row_keepdims", "column", "scalar"])
def test_broadcast_gradients_reduce_to_the_operand_shape(bias_shape, reduce):
    """y = sum((x @ w + b) * r): dy/db is r summed over the axes b was broadcast along."""
    rng = np.random.default_rng(1)
    r = rng.normal(size=(2, 3))
    b = gc.GraphBuilder()
    x, bias = b.input("x", (2, 4), "f64"), b.input("b", bias_shape, "f64")
    w = gc.constant(b, rng.normal(size=(4, 3)))
    graph = b.build({"y": gc.sum((x @ w + bias) * gc.constant(b, r))})
    feeds = {"x": rng.normal(size=(2, 4)), "b": rng.normal(size=bias_shape)}
    out = grads(graph, "y", ["b", "x"], feeds)
    assert out["b"].shape == bias_shape
    np.testing.assert_allclose(out["b"], reduce(r), rtol=1e-13)
    gc.check_grads(graph, "y", ["b", "x"], feeds)


def test_unreachable_input_gets_explicit_zeros():
    b = gc.GraphBuilder()
    x, z = b.input("x", (3,), "f64"), b.input("z", (2, 2), "f64")
    graph = b.build({"y": gc.sum(x * x), "other": z})
    out = grads(graph, "y", ["x", "z"], {"x": np.ones(3), "z": np.ones((2, 2))})
    np.testing.assert_array_equal(out["z"], np.zeros((2, 2)))


@pytest.fixture
def no_bprop_op():
    """A test-local elementwise op without a bprop, removed from the registry afterwards."""
    name = "test_local_no_bprop"
    registry.register(OpDef(
        name=name, doc="identity with a forgotten bprop (test only)", kind="elementwise",
        infer=lambda types, attrs: [types[0]], reference=lambda x: x.copy(),
        scalar=lambda e, x: x, bprop=None))
    try:
        yield name
    finally:
        del registry._REGISTRY[name]


def test_missing_bprops_are_all_reported_with_locations(no_bprop_op):
    b = gc.GraphBuilder()
    x = b.input("x", (3,), "f64")
    line = inspect.currentframe().f_lineno
    first = b.apply(no_bprop_op, [x])
    second = b.apply(no_bprop_op, [gc.tanh(x)])
    graph = b.build({"y": gc.sum(first * second)})
    with pytest.raises(gc.GradientError) as info:
        gc.grad(graph, "y", ["x"])
    message = str(info.value)
    assert f"test_autodiff.py:{line + 1}" in message and f"test_autodiff.py:{line + 2}" in message
    assert message.count(no_bprop_op) >= 2, message
