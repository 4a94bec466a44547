"""Every dtype through every layer: text IR, ONNX import and export, Cast, compiled arithmetic.

Input: small graphs over f16, bf16, f32, f64, i8..i64, u8..u64 and bool. Output: pass/fail of
the text form's round trip, ONNX's element types both ways (and the refusal of float8 and 4-bit
types), Cast between every pair against NumPy and onnx's reference evaluator, integer
wrap-around in compiled code, f16/bf16 computed in f32 and rounded to nearest even (against
NumPy and ml_dtypes), f16/bf16 gradients, and the `half_in_f32_kernels` statistic.
"""
from __future__ import annotations

import itertools
import warnings

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import graphc as gc
from graphc.onnx.backend import GraphcBackend
from graphc.onnx.dtypes import ONNX_DTYPES
from graphc.types import DTYPES, FLOAT_DTYPES, INT_DTYPES, TensorType

ALL = tuple(DTYPES)
NUMERIC = FLOAT_DTYPES + INT_DTYPES


def samples(dtype: str) -> np.ndarray:
    """Values every cast from `dtype` is defined on: both signs, zero, the type's extremes."""
    if dtype == "bool":
        return np.array([True, False, True, False])
    if dtype in INT_DTYPES:
        info = np.iinfo(DTYPES[dtype])
        return np.array([info.min, info.min + 1, 0, 1, 100, info.max // 3, info.max],
                        DTYPES[dtype])
    return np.array([-3.75, -1.0, -0.0, 0.5, 2.9, 100.25, 1.00390625, 1.01171875],
                    DTYPES[dtype])


def one_op(op: str, dtypes: tuple[str, ...], **attrs) -> gc.Graph:
    b = gc.GraphBuilder(op)
    xs = [b.input(f"x{i}", (4,), dt) for i, dt in enumerate(dtypes)]
    return b.build({"y": b.apply(op, xs, **attrs)})


# --- text IR ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL)
def test_text_ir_round_trips_every_dtype(dtype):
    b = gc.GraphBuilder("t")
    x = b.input("x", (2, 3), dtype)
    c = gc.constant(b, samples(dtype)[-3:], dtype)  # the largest values (u64 max)
    y = gc.where(gc.constant(b, np.array([True, False, True])), c, x)
    graph = b.build({"y": y, "z": gc.cast(y, "bf16" if dtype != "bf16" else "u16")})
    text = graph.to_text()
    assert f"input %x: {dtype}[2,3]" in text
    again = gc.parse(text)
    assert again.to_text() == text
    feeds = {"x": np.resize(samples(dtype), (2, 3))}
    for name, value in gc.interpret(again, feeds).items():
        np.testing.assert_array_equal(value, gc.interpret(graph, feeds)[name], strict=True)


@pytest.mark.parametrize("name", ["float8", "f8e4m3", "complex64"])
def test_unknown_dtype_names_are_refused(name):
    with pytest.raises(gc.GraphcError, match="unsupported dtype"):
        TensorType.parse(f"{name}[2]")


# --- ONNX import and export ------------------------------------------------------------------
def _onnx_model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "m", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


@pytest.mark.parametrize("dtype", ALL)
def test_onnx_import_keeps_the_element_type(dtype):
    elem = ONNX_DTYPES[dtype]
    op = "Identity" if dtype == "bool" else "Add"
    model = _onnx_model([helper.make_node(op, ["x", "x"][:1 if op == "Identity" else 2], ["y"])],
                        [helper.make_tensor_value_info("x", elem, [7])],
                        [helper.make_tensor_value_info("y", elem, [7])])
    graph = gc.load_onnx(model)
    assert graph.input_map["x"].value.type == TensorType((7,), dtype)
    x = samples(dtype)[:7] if dtype != "bool" else np.resize(samples(dtype), 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # integer overflow is the point
        want = x if dtype == "bool" else x + x
    got = gc.compile(graph).run({"x": x})["y"]
    np.testing.assert_array_equal(got, want, strict=True)


@pytest.mark.parametrize("dtype", ALL)
def test_onnx_export_writes_the_element_type(tmp_path, dtype):
    b = gc.GraphBuilder("e")
    x = b.input("x", (7,), dtype)
    init = np.resize(samples(dtype), 7)
    y = gc.maximum(x, gc.constant(b, init, dtype)) if dtype != "bool" else \
        gc.logical_or(x, gc.constant(b, init))
    graph = b.build({"y": y})
    path = tmp_path / "e.onnx"
    gc.save_onnx(graph, path)
    back = gc.load_onnx(path)
    assert back.outputs["y"].type == TensorType((7,), dtype)
    feeds = {"x": np.resize(samples(dtype)[::-1], 7)}
    np.testing.assert_array_equal(gc.compile(back).run(feeds)["y"],
                                  gc.interpret(graph, feeds)["y"], strict=True)


@pytest.mark.parametrize("elem", [TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E5M2,
                                  TensorProto.INT4, TensorProto.UINT4])
def test_float8_and_4bit_types_are_refused_naming_the_tensor(elem):
    model = _onnx_model([helper.make_node("Identity", ["narrow_in"], ["y"])],
                        [helper.make_tensor_value_info("narrow_in", elem, [2])],
                        [helper.make_tensor_value_info("y", elem, [2])])
    name = TensorProto.DataType.Name(elem)
    with pytest.raises(gc.GraphcError, match=rf"'narrow_in'.*{name} is not supported"):
        gc.load_onnx(model)


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_half_initializers_are_trainable_params(dtype):
    w = np.full((3, 2), 0.5, DTYPES[dtype])
    elem = ONNX_DTYPES[dtype]
    model = _onnx_model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                        [helper.make_tensor_value_info("x", elem, [4, 3])],
                        [helper.make_tensor_value_info("y", elem, [4, 2])],
                        [numpy_helper.from_array(w, "w")])
    graph = gc.load_onnx(model)
    assert [i.name for i in graph.inputs_with_role("param")] == ["w"]
    assert graph.input_map["w"].value.type == TensorType((3, 2), dtype)


def test_int32_indices_gather_like_int64_ones():
    model = _onnx_model([helper.make_node("Gather", ["data", "idx"], ["y"], axis=0)],
                        [helper.make_tensor_value_info("data", TensorProto.FLOAT16, [4, 2]),
                         helper.make_tensor_value_info("idx", TensorProto.INT32, [3])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [3, 2])])
    data = np.arange(8, dtype=np.float16).reshape(4, 2)
    idx = np.array([3, -1, 0], np.int32)
    got = GraphcBackend.run_model(model, [data, idx])[0]
    np.testing.assert_array_equal(got, data[[3, -1, 0]], strict=True)


# --- Cast between every pair ----------------------------------------------------------------
def _defined(src: str, dst: str, x: np.ndarray) -> np.ndarray:
    """The samples whose cast ONNX defines: a float into an integer type's range."""
    if src not in FLOAT_DTYPES or dst not in INT_DTYPES:
        return x
    info = np.iinfo(DTYPES[dst])
    return x[(x.astype(np.float64) > info.min - 1) & (x.astype(np.float64) < info.max + 1)]


@pytest.mark.parametrize("src,dst", list(itertools.product(ALL, ALL)))
def test_cast_matches_numpy_and_onnx_reference(src, dst):
    x = _defined(src, dst, samples(src))
    model = _onnx_model([helper.make_node("Cast", ["x"], ["y"], to=ONNX_DTYPES[dst])],
                        [helper.make_tensor_value_info("x", ONNX_DTYPES[src], [len(x)])],
                        [helper.make_tensor_value_info("y", ONNX_DTYPES[dst], [len(x)])])
    got = gc.compile(gc.load_onnx(model)).run({"x": x})["y"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = x.astype(DTYPES[dst])
        reference = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, want, strict=True)
    np.testing.assert_array_equal(got.astype(np.float64), reference.astype(np.float64))


def test_castlike_of_a_constant_to_a_computed_tensors_type_stays_a_constant():
    """Pad's constant_value must be known at import: CastLike(constant, x) reads only x's type."""
    fill = numpy_helper.from_array(np.array(-np.inf, np.float32), "fill")
    pads = numpy_helper.from_array(np.array([1, 0], np.int64), "pads")
    model = _onnx_model([helper.make_node("CastLike", ["fill", "x"], ["fill_like"]),
                         helper.make_node("Pad", ["x", "pads", "fill_like"], ["y"])],
                        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [2])],
                        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [3])],
                        [fill, pads])
    x = np.array([1.5, -2.0], ml_dtypes.bfloat16)
    got = gc.compile(gc.load_onnx(model)).run({"x": x})["y"]
    np.testing.assert_array_equal(got, np.array([-np.inf, 1.5, -2.0], ml_dtypes.bfloat16),
                                  strict=True)


# --- integer wrap-around --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "neg", "maximum", "less", "mod",
                                "bit_shift"])
def test_compiled_integers_wrap_around_like_numpy(dtype, op):
    info, npdt = np.iinfo(DTYPES[dtype]), DTYPES[dtype]
    a = np.array([info.max, info.min, info.max - 1, 3], npdt)
    k = np.array([1, 1, info.max, 2], npdt)
    b = gc.GraphBuilder(op)
    x, y = b.input("a", (4,), dtype), b.input("k", (4,), dtype)
    out = {"add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * y,
           "neg": lambda: -x, "maximum": lambda: gc.maximum(x, y), "less": lambda: x < y,
           "mod": lambda: b.apply("mod", [x, y], fmod=0),
           "bit_shift": lambda: b.apply("bit_shift", [x, y], direction="LEFT")}[op]()
    graph = b.build({"y": out})
    feeds = {"a": a, "k": np.array([1, 1, 3, 2], npdt) if op == "bit_shift" else k}
    want = gc.interpret(graph, feeds)["y"]
    np.testing.assert_array_equal(gc.compile(graph).run(feeds)["y"], want, strict=True)


def test_wrap_around_values_are_numpys():
    b = gc.GraphBuilder("w")
    x = b.input("x", (3,), "i8")
    u = b.input("u", (3,), "u64")
    graph = b.build({"s": x + x, "m": x * x, "d": u - gc.constant(b, np.uint64(1), "u64"),
                     "big": u > gc.constant(b, np.uint64(2**63), "u64"),
                     "total": gc.sum(x)})
    feeds = {"x": np.array([100, -128, 127], np.int8),
             "u": np.array([0, 2**63 + 5, 2**64 - 1], np.uint64)}
    got = gc.compile(graph).run(feeds)
    np.testing.assert_array_equal(got["s"], np.array([-56, 0, -2], np.int8), strict=True)
    np.testing.assert_array_equal(got["m"], np.array([16, 0, 1], np.int8), strict=True)
    np.testing.assert_array_equal(got["d"], np.array([2**64 - 1, 2**63 + 4, 2**64 - 2],
                                                     np.uint64), strict=True)
    np.testing.assert_array_equal(got["big"], [False, True, True])
    assert got["total"] == np.int8(99) and got["total"].dtype == np.int8


# --- f16/bf16 compute in f32 -----------------------------------------------------------------
HALF = {"f16": np.float16, "bf16": ml_dtypes.bfloat16}


@pytest.mark.parametrize("dtype", list(HALF))
def test_half_arithmetic_is_rounded_to_nearest_even_after_every_op(dtype):
    """a*b+c/d, sqrt: f32 holds an exact product and (with 24 >= 2p+2 bits) a division or root
    that rounds to the same half as the exact result, so every value equals NumPy's."""
    rng = np.random.default_rng(3)
    a, b_, c, d = (rng.uniform(0.1, 30, 256).astype(HALF[dtype]) for _ in range(4))
    bld = gc.GraphBuilder("h")
    xs = [bld.input(n, (256,), dtype) for n in "abcd"]
    graph = bld.build({"y": xs[0] * xs[1] + xs[2] / xs[3], "r": gc.sqrt(xs[0])})
    exe = gc.compile(graph)
    got = exe.run(dict(zip("abcd", (a, b_, c, d))))
    np.testing.assert_array_equal(got["y"], a * b_ + c / d, strict=True)
    np.testing.assert_array_equal(got["r"], np.sqrt(a), strict=True)
    assert exe.stats["half_in_f32_kernels"] >= 1


@pytest.mark.parametrize("dtype", list(HALF))
def test_storing_a_half_rounds_ties_to_even(dtype):
    eps = 2.0 ** (-11 if dtype == "f16" else -8)  # half an ulp of 1.0
    x = np.array([1 + eps, 1 + 3 * eps, 1 + eps * 1.001, -(1 + 3 * eps)], np.float32)
    graph = one_op("cast", ("f32",), to=dtype)
    got = gc.compile(graph).run({"x0": x})["y"]
    want = x.astype(HALF[dtype])
    np.testing.assert_array_equal(got, want, strict=True)
    assert got[0] == 1.0 and got[1] == 1 + 4 * eps  # the ties went to the even neighbour


@pytest.mark.parametrize("dtype", list(HALF))
def test_half_transcendentals_are_within_one_ulp(dtype):
    x = np.linspace(-3, 3, 64).astype(HALF[dtype])
    for op in ("exp", "tanh", "sigmoid", "log"):
        graph = one_op(op, (dtype,))
        feed = np.abs(x) + HALF[dtype](0.5) if op == "log" else x
        got = gc.compile(graph).run({"x0": feed[:4]})["y"]
        want = gc.interpret(graph, {"x0": feed[:4]})["y"]
        assert got.dtype == want.dtype == np.dtype(HALF[dtype])
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                   rtol=2.0 ** (-10 if dtype == "f16" else -7))


@pytest.mark.parametrize("dtype", list(HALF))
def test_half_matmul_accumulates_in_f32_and_differentiates(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 32)).astype(HALF[dtype])
    w = (0.2 * rng.standard_normal((32, 4))).astype(HALF[dtype])
    b = gc.GraphBuilder("mm")
    tx, tw = b.input("x", x.shape, dtype), b.param("w", w)
    loss = gc.sum(gc.tanh(tx @ tw))
    graph = b.build({"loss": loss})
    vg = gc.compile_value_and_grad(graph, "loss", ["w"])
    value, grads = vg.run({"x": x})
    assert grads["w"].dtype == np.dtype(HALF[dtype]) and np.isfinite(value)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    want = x64.T @ (1 - np.tanh(x64 @ w64) ** 2)
    tol = 2e-2 if dtype == "f16" else 1e-1
    np.testing.assert_allclose(grads["w"].astype(np.float64), want, rtol=tol, atol=tol)
    assert vg.stats["half_in_f32_kernels"] >= 1


def test_f32_graphs_report_no_half_kernels():
    exe = gc.compile(one_op("exp", ("f32",)))
    assert exe.stats["half_in_f32_kernels"] == 0


def test_mixed_dtypes_stay_an_error():
    b = gc.GraphBuilder("mix")
    x, y = b.input("x", (2,), "f16"), b.input("y", (2,), "f32")
    with pytest.raises(gc.ShapeError, match="dtypes differ"):
        x + y
    i, j = b.input("i", (2,), "i32"), b.input("j", (2,), "u32")
    with pytest.raises(gc.ShapeError, match="dtypes differ"):
        i * j


@pytest.mark.parametrize("dtype", ["i8", "u16", "bool"])
def test_gradients_refuse_integer_inputs(dtype):
    b = gc.GraphBuilder("g")
    x = b.input("x", (2,), dtype)
    graph = b.build({"y": gc.sum(gc.cast(x, "f32"))})
    with pytest.raises(gc.GraphcError):
        gc.grad(graph, "y", ["x"])


@pytest.mark.parametrize("dtype", list(HALF))
def test_half_conv_softmax_layer_norm_gradients_follow_the_interpreter(dtype):
    """Composites decompose into matmuls (accumulated in f32) and reductions (in f32
    registers); the compiled gradient is within a few units in the last place of NumPy's."""
    rng = np.random.default_rng(0)
    b = gc.GraphBuilder("c")
    x = b.input("x", (2, 3, 6, 6), dtype)
    w = b.param("w", (0.3 * rng.standard_normal((4, 3, 3, 3))).astype(HALF[dtype]))
    y = gc.conv(x, w)
    loss = gc.sum(gc.softmax(y, axis=1) * gc.layer_norm(y, 1.0, 0.0, 1, 1e-5))
    graph = gc.grad(b.build({"loss": loss}), "loss", ["w"])
    feeds = {"x": rng.standard_normal((2, 3, 6, 6)).astype(HALF[dtype])}
    got, want = gc.compile(graph).run(feeds)["w"], gc.interpret(graph, feeds)["w"]
    assert got.dtype == want.dtype == np.dtype(HALF[dtype])
    scale = float(np.max(np.abs(want.astype(np.float64))))
    ulp = 2.0 ** (-10 if dtype == "f16" else -7)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                               atol=8 * ulp * scale)
