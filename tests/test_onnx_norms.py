"""ONNX normalisation and layout ops (graphc/onnx/norm_ops.py) against torch and onnxruntime.

Input: one-node models made here with onnx.helper (the op, then loss = sum(y * w) so that every
output element gets its own upstream gradient). Output: checks that gc.load_onnx's graph,
compiled, gives onnxruntime's y (torch's where onnxruntime has no kernel), that its gradients,
compiled and interpreted, match torch autograd's, and that unsupported attribute values and bad
shapes are refused with a GraphcError. ONNX's node suite covers the forward cases it has
(`python tools/node_suite.py --op GroupNormalization ...`); these add gradients, opset 18's
GroupNormalization, opset 6's PRelu and the attribute values the suite does not reach.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as TF
from onnx import TensorProto, helper

import graphc as gc
from graphc.onnx import norm_ops
from tests.onnx_vs_torch import check, check_function, model, onnxruntime, randn, refused


# --- normalisations ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 2, 2)])
def test_instance_normalization(shape):
    c = shape[1]
    feeds = {"x": randn(*shape), "scale": randn(c), "B": randn(c)}
    check("InstanceNormalization", feeds,
          lambda x, s, b: TF.instance_norm(x, weight=s, bias=b, eps=1e-3), 22, epsilon=1e-3)


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_group_normalization_opset_21_per_channel(groups):
    feeds = {"x": randn(2, 6, 3, 4), "scale": randn(6), "bias": randn(6)}
    check("GroupNormalization", feeds, lambda x, s, b: TF.group_norm(x, groups, s, b, eps=1e-4),
          21, num_groups=groups, epsilon=1e-4)


@pytest.mark.parametrize("groups", [2, 3])
def test_group_normalization_opset_18_per_group(groups):
    """Opset 18's scale and bias are per group: each group's value covers its channels. (onnx's
    checker calls GroupNormalization-18 deprecated and gc.load_onnx refuses such models, so the
    function is called directly.)"""
    c = 6
    feeds = {"x": randn(2, c, 5), "scale": randn(groups), "bias": randn(groups)}

    def per_group(x, s, b):
        return TF.group_norm(x, groups, s.repeat_interleave(c // groups),
                             b.repeat_interleave(c // groups))
    check_function(norm_ops.GroupNormalization, feeds, per_group, num_groups=groups)


def test_group_normalization_double_stash():
    """stash_type 11 (double) computes the statistics in f64 and returns f32."""
    feeds = {"x": randn(2, 4, 3) * 100 + 1000, "scale": randn(4), "bias": randn(4)}
    check("GroupNormalization", feeds, lambda x, s, b: TF.group_norm(
        x.double(), 2, s.double(), b.double()).float(), 21, ort_check=False, num_groups=2,
        stash_type=11)


@pytest.mark.parametrize("axis", [-1, 1, 0, -2])
def test_rms_normalization(axis):
    x = randn(2, 3, 4)
    tail = x.shape[axis % 3:]
    feeds = {"X": x, "scale": randn(*tail)}
    check("RMSNormalization", feeds,
          lambda x, s: TF.rms_norm(x, tail, weight=s, eps=1e-3), 23, axis=axis, epsilon=1e-3)


def test_rms_normalization_broadcast_scale():
    """The scale broadcasts to the normalised axes (here [4] over [3, 4])."""
    feeds = {"X": randn(2, 3, 4), "scale": randn(4)}
    check("RMSNormalization", feeds, lambda x, s: TF.rms_norm(x, (3, 4)) * s, 23, axis=1)


@pytest.mark.parametrize("p, axis", [(1, -1), (1, 0), (2, -1), (2, 1), (2, 0)])
def test_lp_normalization(p, axis):
    feeds = {"input": randn(3, 4, 5)}
    check("LpNormalization", feeds, lambda x: TF.normalize(x, p=p, dim=axis, eps=0.0), 22,
          axis=axis, p=p)


@pytest.mark.parametrize("p", [1, 2])
def test_lp_normalization_zero_norm_gives_zero_and_finite_gradients(p):
    x = randn(3, 4)
    x[1] = 0.0
    w = randn(3, 4)
    made = model("LpNormalization", {"input": x}, [3, 4], 22, {"p": p, "axis": 1})
    graph = gc.load_onnx(made)
    y = gc.compile(graph).run({"input": x, "w": w})["y"]
    np.testing.assert_allclose(y, onnxruntime(made, {"input": x, "w": w})[0], rtol=1e-5)
    assert np.all(y[1] == 0)
    _, grads = gc.compile_value_and_grad(graph, "loss", ["input"]).run({"input": x, "w": w})
    assert np.all(np.isfinite(grads["input"])) and np.all(grads["input"][1] == 0)


# --- layout ----------------------------------------------------------------------------------------
def _depth_to_space_dcr(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(
        n, c // (b * b), h * b, w * b)


def _space_to_depth_dcr(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).reshape(
        n, c * b * b, h // b, w // b)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("b", [2, 3])
def test_depth_to_space(mode, b):
    feeds = {"input": randn(2, 2 * b * b, 3, 2)}
    fn = (lambda x: TF.pixel_shuffle(x, b)) if mode == "CRD" else \
        (lambda x: _depth_to_space_dcr(x, b))
    check("DepthToSpace", feeds, fn, 13, blocksize=b, mode=mode)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_space_to_depth(mode):
    feeds = {"input": randn(2, 3, 4, 6)}
    fn = (lambda x: TF.pixel_unshuffle(x, 2)) if mode == "CRD" else \
        (lambda x: _space_to_depth_dcr(x, 2))
    check("SpaceToDepth", feeds, fn, 28 if mode == "CRD" else 13, blocksize=2,
          **({"mode": mode} if mode == "CRD" else {}))


# --- elementwise and one-hot -------------------------------------------------------------------
@pytest.mark.parametrize("bias, lambd", [(0.0, 0.5), (0.5, 0.5), (0.25, 1.0)])
def test_shrink(bias, lambd):
    x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(4, 6) + 0.01
    check("Shrink", {"input": x}, lambda x: torch.where(
        x < -lambd, x + bias, torch.where(x > lambd, x - bias, torch.zeros_like(x))), 9,
        bias=bias, lambd=lambd)


def test_shrink_integers_match_onnxruntime():
    x = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    made = model("Shrink", {"input": x}, [3, 4], 9, {"bias": 1.5, "lambd": 2.0}, loss=False)
    got = gc.compile(gc.load_onnx(made)).run({"input": x})["y"]  # int32 stays int32
    np.testing.assert_array_equal(got, onnxruntime(made, {"input": x})[0], strict=True)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_hardmax_picks_the_first_maximum(axis):
    x = np.array([[[1, 3, 3], [2, 2, 0]], [[5, 5, 5], [0, 1, 1]]], np.float32)
    made = model("Hardmax", {"input": x}, list(x.shape), 13, {"axis": axis}, loss=False)
    got = gc.compile(gc.load_onnx(made)).run({"input": x})["y"]
    np.testing.assert_array_equal(got, onnxruntime(made, {"input": x})[0])


def test_hardmax_times_input_has_the_one_hot_as_gradient():
    """Hardmax is piecewise constant: d sum(hardmax(x) * x) / dx is the one-hot itself."""
    x = randn(3, 5)
    nodes = [helper.make_node("Hardmax", ["x"], ["h"]), helper.make_node("Mul", ["h", "x"],
                                                                          ["hx"]),
             helper.make_node("ReduceSum", ["hx"], ["loss"], keepdims=0)]
    graph = helper.make_graph(nodes, "hardmax", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])],
        [helper.make_tensor_value_info("loss", TensorProto.FLOAT, [])])
    g = gc.load_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    _, grads = gc.compile_value_and_grad(g, "loss", ["x"]).run({"x": x})
    np.testing.assert_array_equal(grads["x"], np.eye(5, dtype=np.float32)[x.argmax(1)])


# --- PRelu ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 3, 4, 5), (2, 3, 2, 4, 5)])
def test_prelu_opset_6_slope_is_per_channel(shape):
    """Opset <= 6 (PyTorch's old exports): a [C] slope applies along axis 1, as torch's PReLU;
    onnxruntime has no opset-6 PRelu kernel."""
    feeds = {"x": randn(*shape), "slope": np.array([0.1, 0.5, -2.0], np.float32)}
    check("PRelu", feeds, lambda x, s: TF.prelu(x, s), 6, ort_check=False)


@pytest.mark.parametrize("slope_shape", [(5,), (4, 1), (1,), (3, 4, 5)])
def test_prelu_slope_broadcasts_unidirectionally(slope_shape):
    feeds = {"x": randn(3, 4, 5), "slope": randn(*slope_shape)}
    check("PRelu", feeds, lambda x, s: torch.where(x < 0, x * s, x), 16)


def test_prelu_slope_that_does_not_broadcast_is_refused():
    refused("PRelu", {"x": randn(2, 3, 4), "slope": randn(2)}, [2, 3, 4],
            r"PRelu: slope \[2\] does not broadcast to X \[2, 3, 4\]", opset=16)


# --- refusals ------------------------------------------------------------------------------------
def test_bad_attributes_and_shapes_are_refused():
    x4 = randn(1, 8, 2, 2)
    refused("LpNormalization", {"input": x4}, [1, 8, 2, 2], "p must be 1 or 2, got 3", p=3)
    refused("GroupNormalization", {"X": x4, "scale": randn(8), "bias": randn(8)},
            [1, 8, 2, 2], "num_groups 3 must divide the 8 channels", num_groups=3)
    refused("GroupNormalization", {"X": x4, "scale": randn(4), "bias": randn(4)},
            [1, 8, 2, 2], r"scale must be \[8\] .* or \[2\]", opset=21, num_groups=2)
    refused("InstanceNormalization", {"x": randn(2, 3), "s": randn(3), "b": randn(3)},
            [2, 3], r"input must be \[N, C, D1, ...\]", opset=22)
    refused("InstanceNormalization", {"x": x4, "s": randn(4), "b": randn(8)},
            [1, 8, 2, 2], r"scale \[4\] and B \[8\] must be \[8\]", opset=22)
    refused("RMSNormalization", {"X": x4, "scale": randn(3)}, [1, 8, 2, 2],
            r"scale \[3\] must broadcast to the normalised axes \[2\]")
    refused("DepthToSpace", {"input": randn(1, 6, 2, 2)}, [1, 1, 4, 4],
            "6 channels are not a multiple of blocksize", opset=13, blocksize=2)
    refused("SpaceToDepth", {"input": randn(1, 2, 3, 4)}, [1, 8, 1, 2],
            "height 3 and width 4 must be multiples of blocksize 2", opset=13, blocksize=2)
    refused("DepthToSpace", {"input": randn(1, 8, 2)}, [1, 2, 4],
            r"input must be \[N, C, H, W\]", opset=13, blocksize=2)


def test_compositions_export_and_reimport(tmp_path):
    """Imported compositions are graphc ops, so gc.save_onnx writes them and they read back."""
    feeds = {"X": randn(2, 4, 3, 2), "scale": randn(4), "bias": randn(4)}
    made = model("GroupNormalization", feeds, [2, 4, 3, 2], 21, {"num_groups": 2},
                   loss=False)
    graph = gc.load_onnx(made)
    path = tmp_path / "group_norm.onnx"
    gc.save_onnx(graph, path)
    again = gc.load_onnx(onnx.load(path))
    np.testing.assert_allclose(gc.interpret(again, feeds)["y"], onnxruntime(made, feeds)[0],
                               rtol=1e-5, atol=1e-5)
