"""ONNX Mod through graphc: special values, signed zeros, integers, gradients and export.

Input: one-node ONNX models (Mod with fmod=1 or 0) loaded with gc.load_onnx, run compiled and
interpreted on the cross product of special values (±0, ±inf, NaN, huge and tiny operands).
Output: pass/fail against np.fmod (fmod=1, C fmod) and np.mod (fmod=0), bit for bit: NaN where
NumPy gives NaN and the sign of every zero; against torch's fmod / remainder autograd for the
gradients; and onnxruntime on graphc's own export of `mod` (a one-to-one ONNX Mod).
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

import graphc as gc
from graphc.onnx.export import to_onnx

_SPECIAL = [0.0, -0.0, 1.5, -1.5, 7.0, -7.0, 3.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 1e-30,
            5e-324]
_NP_TYPES = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64,
             TensorProto.INT64: np.int64}


def _mod_model(tmp_path, elem_type, fmod: int, shape) -> gc.Graph:
    node = helper.make_node("Mod", ["A", "B"], ["C"], fmod=fmod)
    graph = helper.make_graph(
        [node], "mod", [helper.make_tensor_value_info(n, elem_type, shape) for n in "AB"],
        [helper.make_tensor_value_info("C", elem_type, shape)])
    path = tmp_path / "mod.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return gc.load_onnx(str(path))


def _cross(values, dtype):
    a, b = np.meshgrid(np.asarray(values, dtype), np.asarray(values, dtype), indexing="ij")
    return a.reshape(-1), b.reshape(-1)


def _assert_same_values_and_signs(got, want, what):
    """Equal values, NaN where want is NaN, and the same sign on every non-NaN (zeros too)."""
    np.testing.assert_array_equal(got, want, err_msg=what)
    num = ~np.isnan(want)
    bad = np.flatnonzero(np.signbit(got[num]) != np.signbit(want[num]))
    assert bad.size == 0, \
        f"{what}: sign differs at {bad}: got {got[num][bad]}, want {want[num][bad]}"


@pytest.mark.parametrize("elem_type", [TensorProto.FLOAT, TensorProto.DOUBLE])
@pytest.mark.parametrize("fmod", [1, 0])
def test_float_special_values_match_numpy(tmp_path, elem_type, fmod):
    dtype = _NP_TYPES[elem_type]
    a, b = _cross(_SPECIAL, dtype)
    graph = _mod_model(tmp_path, elem_type, fmod, [a.size])
    with np.errstate(all="ignore"):
        want = np.fmod(a, b) if fmod else np.mod(a, b)
    feeds = {"A": a, "B": b}
    compiled = gc.compile(graph).run(feeds)["C"]
    assert compiled.dtype == dtype
    _assert_same_values_and_signs(compiled, want, f"compiled fmod={fmod}")
    _assert_same_values_and_signs(gc.interpret(graph, feeds)["C"], want, f"interpreted fmod={fmod}")


def test_fmod_follows_c_rules_on_signed_zeros_and_infinities(tmp_path):
    """The rules themselves, spelled out: the dividend's sign, fmod(x, ±inf) = x,
    fmod(±inf, y) = fmod(x, 0) = NaN."""
    a = np.array([-0.0, 0.0, -0.0, -5.0, 5.0, 2.5, np.inf, -np.inf, 1.0, -6.0])
    b = np.array([3.0, -3.0, -np.inf, np.inf, -np.inf, -0.0, 2.0, 2.0, 0.0, 3.0])
    got = gc.compile(_mod_model(tmp_path, TensorProto.DOUBLE, 1, [a.size])).run(
        {"A": a, "B": b})["C"]
    _assert_same_values_and_signs(got[:5], np.array([-0.0, 0.0, -0.0, -5.0, 5.0]), "fmod")
    assert np.isnan(got[5:9]).all() and got[9] == 0 and np.signbit(got[9])


@pytest.mark.parametrize("fmod", [1, 0])
def test_integer_mod_matches_numpy_exactly(tmp_path, fmod):
    """Beyond 2**53 too (no detour through floats); x % 0 and INT64_MIN % -1 are 0."""
    ints = [0, 1, -1, 3, -3, 7, -7, 2**53 + 1, -(2**53) - 3, 2**63 - 1, -(2**63)]
    a, b = _cross(ints, np.int64)
    graph = _mod_model(tmp_path, TensorProto.INT64, fmod, [a.size])
    with np.errstate(all="ignore"):
        want = np.fmod(a, b) if fmod else np.mod(a, b)
    np.testing.assert_array_equal(gc.compile(graph).run({"A": a, "B": b})["C"], want)
    np.testing.assert_array_equal(gc.interpret(graph, {"A": a, "B": b})["C"], want)


@pytest.mark.parametrize("fmod", [1, 0])
def test_gradients_match_torch(tmp_path, fmod):
    """d/dA = 1 and d/dB = -(the integer quotient), as torch.fmod / torch.remainder have."""
    rng = np.random.default_rng(3)
    b = rng.uniform(0.5, 2, 12) * rng.choice([-1, 1], 12)
    a = b * (rng.integers(-3, 4, 12) + rng.uniform(0.2, 0.8, 12))
    weights = rng.uniform(0.5, 1.5, 12)
    graph = _mod_model(tmp_path, TensorProto.DOUBLE, fmod, [12])
    builder, tensors = gc.GraphBuilder.extend(graph)
    loss = gc.sum(tensors[graph.outputs["C"].name] * gc.constant(builder, weights, "f64"))
    grads = gc.compile(gc.grad(builder.build({"loss": loss}), "loss", ["A", "B"])).run(
        {"A": a, "B": b})
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    y = torch.fmod(ta, tb) if fmod else torch.remainder(ta, tb)
    (y * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(grads["A"], ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(grads["B"], tb.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype, fmod", [("f32", 1), ("f64", 1), ("i64", 1), ("i64", 0)])
def test_export_is_onnx_mod_and_onnxruntime_agrees(dtype, fmod):
    """gc.mod exports one-to-one as Mod(fmod); onnxruntime computes the same values. (ONNX
    before opset 28, and onnxruntime, take floats only with fmod=1.)"""
    b = gc.GraphBuilder("mod")
    x, y = b.input("x", (14,), dtype), b.input("y", (14,), dtype)
    graph = b.build({"z": gc.mod(x, y, fmod=fmod)})
    model = to_onnx(graph)
    assert [[(a.name, a.i) for a in n.attribute] for n in model.graph.node
            if n.op_type == "Mod"] == [[("fmod", fmod)]]
    if dtype == "i64":
        xv = np.array([7, -7, 7, -7, 0, 9, -9, 2**62, -(2**62), 5, -5, 1, 6, -6])
        yv = np.array([3, 3, -3, -3, 4, 2, 2, 3, 3, -1, 1, 5, 4, 4])
    else:
        xv = np.array([0.0, -0.0, 5.5, -5.5, 1e30, -7.0, 7.0, np.inf, 2.0, 3.25, -3.25, 1e-30,
                       -1.0, 9.0], np.float32 if dtype == "f32" else np.float64)
        yv = np.array([2.0, 2.0, -2.0, 2.0, 3.0, np.inf, -np.inf, 2.0, 0.0, 0.5, 0.5, 3.0, 0.3,
                       -2.5], xv.dtype)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"x": xv, "y": yv})
    got = gc.compile(graph).run({"x": xv, "y": yv})["z"]
    _assert_same_values_and_signs(got, want, f"{dtype} fmod={fmod}")
