"""ONNX ConvTranspose, Resize, Upsample and 3-D Conv/pools from PyTorch and onnx.helper models.

Input: torch modules (ConvTranspose1d/2d/3d, F.interpolate, a small 3-D encoder-decoder)
exported with torch.onnx.export (the legacy exporter, opset 17) to a tmp file, and models made
with onnx.helper. Output: checks that gc.load_onnx imports them, that the forward pass matches
onnxruntime (1e-4 relative) and that compiled gradients of sum(y * r) with respect to the input
and every weight match torch's autograd (1e-4 norm-wise); that opset 7-10 Upsample/Resize keep
their asymmetric coordinates through keep_legacy_resize (and are refused, not guessed, without
it); and that ambiguous or unsupported attribute values are clear GraphcErrors naming the node.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper, version_converter
from onnx.reference import ReferenceEvaluator

import graphc as gc
from graphc.builder import GraphBuilder
from graphc.onnx.export import to_onnx
from graphc.onnx.upsample_ops import keep_legacy_resize

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
Fn = torch.nn.functional


class Interpolate(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x):
        return Fn.interpolate(x, **self.kwargs)


class Tiny3dUNet(torch.nn.Module):
    """Conv3d -> MaxPool3d -> ConvTranspose3d, skip-joined, -> AvgPool3d."""

    def __init__(self):
        super().__init__()
        self.down = torch.nn.Conv3d(2, 3, 3, padding=1)
        self.up = torch.nn.ConvTranspose3d(3, 2, 2, stride=2)

    def forward(self, x):
        h = torch.relu(self.down(x))
        return Fn.avg_pool3d(self.up(Fn.max_pool3d(h, 2)) + x, 2, stride=1)


T = torch.nn.ConvTranspose2d
MODELS = {  # name: (module, input shape)
    "convT2d_plain": (T(2, 3, 3), (2, 2, 3, 4)),
    "convT2d_strides_pads": (T(2, 2, (3, 2), stride=(2, 3), padding=(1, 0)), (1, 2, 3, 3)),
    "convT2d_output_padding": (T(2, 3, 3, stride=2, padding=1, output_padding=1), (1, 2, 3, 4)),
    "convT2d_groups_no_bias": (T(4, 6, 2, stride=2, groups=2, bias=False), (2, 4, 2, 3)),
    "convT2d_dilation": (T(2, 2, 3, stride=2, dilation=2, padding=2, output_padding=1),
                         (1, 2, 3, 3)),
    "convT1d": (torch.nn.ConvTranspose1d(3, 2, 4, stride=3, padding=2, output_padding=1,
                                         groups=1), (2, 3, 5)),
    "convT1d_groups_dilation": (torch.nn.ConvTranspose1d(4, 4, 3, stride=2, dilation=2,
                                                         groups=4), (1, 4, 4)),
    "nearest_x2": (Interpolate(scale_factor=2, mode="nearest"), (1, 2, 3, 4)),
    "nearest_size": (Interpolate(size=(5, 7), mode="nearest"), (1, 2, 3, 4)),
    "bilinear": (Interpolate(scale_factor=2, mode="bilinear", align_corners=False),
                 (1, 2, 3, 4)),
    "bilinear_align_corners": (Interpolate(size=(5, 7), mode="bilinear", align_corners=True),
                               (1, 2, 3, 4)),
    "linear_1d": (Interpolate(scale_factor=3, mode="linear", align_corners=False), (2, 2, 4)),
    "unet3d": (Tiny3dUNet(), (1, 2, 4, 4, 4)),
}


def _export(module, shape, path):
    torch.manual_seed(0)
    for p in module.parameters():
        torch.nn.init.uniform_(p, -1.0, 1.0)
    x = torch.randn(shape)
    torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"])
    return x


def _with_weighted_sum(graph, r):
    """The graph plus a scalar output loss = sum(y * r) (r a constant)."""
    b, tensors = GraphBuilder.extend(graph)
    y = tensors[graph.outputs["y"].name]
    return b.build({"y": y, "loss": gc.sum(y * gc.constant(b, r, y.dtype))})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_export_matches_onnxruntime_and_torch_gradients(name, tmp_path):
    module, shape = MODELS[name]
    path = tmp_path / f"{name}.onnx"
    x = _export(module, shape, path)
    feeds = {"x": x.numpy()}
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    graph = gc.load_onnx(path)
    got = gc.interpret(graph, feeds)["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    r = np.random.default_rng(1).uniform(0.5, 1.5, want.shape).astype(np.float32)
    xt = x.clone().requires_grad_(True)
    loss_t = (module(xt) * torch.from_numpy(r)).sum()
    loss_t.backward()
    torch_grads = {"x": xt.grad.numpy(),
                   **{n: p.grad.numpy() for n, p in module.named_parameters()}}
    params = [i.name for i in graph.inputs_with_role("param")]
    assert sorted(params) == sorted(n for n, _ in module.named_parameters())
    loss, grads = gc.compile_value_and_grad(_with_weighted_sum(graph, r), "loss",
                                            ["x", *params]).run(feeds)
    assert loss == pytest.approx(loss_t.item(), rel=1e-4)
    for key, expected in torch_grads.items():
        rel = np.linalg.norm(grads[key] - expected) / np.linalg.norm(expected)
        assert rel < 1e-4, f"{key}: relative error {rel:.2e}"


def test_output_padding_past_the_stride_matches_torch(tmp_path):
    """output_padding >= stride (allowed below the dilation): positions past the last window
    of col2im; onnxruntime rejects this model, so the forward pass is checked against torch."""
    module = torch.nn.ConvTranspose2d(2, 2, 2, stride=(1, 2), dilation=(3, 1),
                                      output_padding=(2, 1))
    path = tmp_path / "convT_output_padding.onnx"
    x = _export(module, (1, 2, 3, 3), path)
    got = gc.compile(gc.load_onnx(path)).run({"x": x.numpy()})["y"]
    np.testing.assert_allclose(got, module(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_3d_conv_exports_as_onnx_conv():
    """gc.conv (any spatial rank) is ONNX Conv one-to-one: the exporter writes it as is."""
    b = gc.GraphBuilder("conv3d")
    x = b.input("x", (1, 2, 4, 5, 3))
    w = b.param("w", np.random.default_rng(0).standard_normal((4, 1, 2, 3, 2)).astype("f4"))
    graph = b.build({"y": gc.conv(x, w, None, strides=(1, 2, 1), pads=(1, 0, 1, 0, 1, 1),
                                  dilations=(2, 1, 1), group=2)})
    model = to_onnx(graph)
    assert [n.op_type for n in model.graph.node if n.op_type != "Identity"] == ["Conv"]
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 2, 4, 5, 3)).astype("f4")}
    np.testing.assert_allclose(gc.compile(graph).run(feeds)["y"], _ort(model, feeds),
                               rtol=1e-5, atol=1e-5)


# --- models written with onnx.helper -------------------------------------------------------
def _model(op, inputs, attrs, shapes, out_shape, inits=(), opset=17):
    node = helper.make_node(op, [n for n, _ in inputs], ["Y"], name=f"my_{op.lower()}", **attrs)
    graph = helper.make_graph(
        [node], "m", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                      for (n, _), s in zip(inputs, shapes) if n and _ is None],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v, np.float32), n) for n, v in inputs
         if n and v is not None] + list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


_ROI = [0, 0, 0.1, -0.2, 1, 1, 0.8, 1.1]
HELPER_MODELS = {  # name: (op, inputs (name, constant or None), attributes)
    "resize_cubic_exclude_outside": ("Resize", [("", None), ("scales", [1, 1, 1.5, 0.75])],
                                     {"mode": "cubic", "exclude_outside": 1,
                                      "cubic_coeff_a": -0.5}),
    "resize_linear_antialias": ("Resize", [("", None), ("", None), ("sizes", [2, 3])],
                                {"mode": "linear", "antialias": 1, "axes": [3, 2]}),
    "resize_tf_crop_and_resize": ("Resize", [("roi", _ROI), ("", None), ("sizes", [1, 2, 5, 3])],
                                  {"mode": "linear", "extrapolation_value": 2.5,
                                   "coordinate_transformation_mode": "tf_crop_and_resize"}),
    "resize_nearest_symmetric": ("Resize", [("", None), ("scales", [1, 1, 1.7, 1.3])],
                                 {"mode": "nearest", "nearest_mode": "round_prefer_ceil",
                                  "coordinate_transformation_mode": "half_pixel_symmetric"}),
    "convT_output_shape_past_the_result": (
        "ConvTranspose", [("W", np.linspace(-1, 1, 2 * 3 * 8).reshape(2, 3, 2, 2, 2))],
        {"strides": [2, 1, 3], "output_shape": [9, 4, 6]}),
}


@pytest.mark.parametrize("name", sorted(HELPER_MODELS))
def test_helper_models_match_onnx_reference_and_central_differences(name):
    op, operands, attrs = HELPER_MODELS[name]
    shape = (1, 2, 3, 4) if op == "Resize" else (1, 2, 4, 3, 2)
    model = _model(op, [("X", None), *operands], attrs, [shape], None, opset=19)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    want = ReferenceEvaluator(model).run(None, {"X": x})[0]
    graph = gc.load_onnx(_model(op, [("X", None), *operands], attrs, [shape], list(want.shape),
                                opset=19))
    np.testing.assert_allclose(gc.compile(graph).run({"X": x})["Y"], want, rtol=1e-5, atol=1e-5)
    b, tensors = GraphBuilder.extend(graph)
    r = np.random.default_rng(3).uniform(0.5, 1.5, want.shape)
    y = tensors[graph.outputs["Y"].name]
    loss = b.build({"loss": gc.sum(y * gc.constant(b, r, y.dtype))})
    wrt = ["X", *(i.name for i in graph.inputs_with_role("param"))]
    assert gc.check_grads(loss, "loss", wrt, {"X": x}, tol=1e-6) < 1e-6


@pytest.mark.parametrize("op, opset, mode, scales, out", [
    ("Upsample", 9, "nearest", [1, 1, 1.3, 2.5], [1, 2, 3, 10]),
    ("Upsample", 9, "linear", [1, 1, 1.3, 2.5], [1, 2, 3, 10]),
    ("Resize", 10, "nearest", [1, 1, 0.7, 1.6], [1, 2, 2, 6]),
    ("Resize", 10, "linear", [1, 1, 1.7, 0.6], [1, 2, 5, 2]),
])
def test_legacy_resize_keeps_asymmetric_coordinates(op, opset, mode, scales, out):
    """onnx's version converter turns an opset-9 Upsample or a Resize-10 into a half_pixel
    Resize; with keep_legacy_resize the import matches onnxruntime on the original model,
    without it the import refuses (the two coordinates differ here) instead of guessing."""
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 4)).astype(np.float32)
    model = _model(op, [("X", None), ("scales", scales)], {"mode": mode}, [x.shape], out,
                   opset=opset)
    converted = version_converter.convert_version(model, 13)
    with pytest.raises(gc.GraphcError, match=r"Resize \(" + mode + r"\).*onnx/onnx#8480"):
        gc.load_onnx(converted)
    graph = gc.load_onnx(keep_legacy_resize(model, converted))
    got = gc.compile(graph).run({"X": x})["Y"]
    np.testing.assert_allclose(got, _ort(model, {"X": x}), rtol=1e-5, atol=1e-6)


def test_legacy_integer_nearest_upsample_imports_directly():
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    model = _model("Upsample", [("X", None), ("scales", [1, 1, 2, 3])], {"mode": "nearest"},
                   [x.shape], [1, 2, 4, 6], opset=9)
    got = gc.interpret(gc.load_onnx(model), {"X": x})["Y"]
    np.testing.assert_array_equal(got, np.repeat(np.repeat(x, 2, axis=2), 3, axis=3))


def test_resize_nearest_gathers_integers_exactly():
    node = helper.make_node("Resize", ["X", "", "scales"], ["Y"], mode="nearest",
                            coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    graph = helper.make_graph(
        [node], "m", [helper.make_tensor_value_info("X", TensorProto.INT64, [1, 1, 2, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.INT64, [1, 1, 4, 6])],
        [numpy_helper.from_array(np.asarray([1, 1, 2, 2], np.float32), "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.arange(6, dtype=np.int64).reshape(1, 1, 2, 3) * 10**15
    got = gc.compile(gc.load_onnx(model)).run({"X": x})["Y"]
    np.testing.assert_array_equal(got, np.repeat(np.repeat(x, 2, axis=2), 2, axis=3))


@pytest.mark.parametrize("op, inputs, attrs, match", [
    ("ConvTranspose", [("X", None), ("W", np.ones((1, 1, 3)))], {"output_shape": [5]},
     r"my_convtranspose.*odd 1 element"),
    ("ConvTranspose", [("X", None), ("W", np.ones((1, 1, 1)))],
     {"auto_pad": "SAME_UPPER", "strides": [3]}, r"my_convtranspose.*SAME_UPPER"),
    ("ConvTranspose", [("X", None), ("W", np.ones((1, 1, 3)))], {"pads": [3, 3]},
     r"my_convtranspose.*leave no output"),
    ("Resize", [("X", None), ("", None), ("scales", [1, 1, 2])], {"mode": "area"},
     r"my_resize.*mode 'area'"),
    ("Resize", [("X", None), ("", None), ("scales", [1, 1, 2])],
     {"mode": "linear", "coordinate_transformation_mode": "tf_half_pixel"},
     r"my_resize.*coordinate_transformation_mode 'tf_half_pixel'"),
    ("Resize", [("X", None), ("", None), ("scales", [1, 1, 2])],
     {"mode": "nearest", "nearest_mode": "round"}, r"my_resize.*nearest_mode 'round'"),
    ("Resize", [("X", None), ("", None), ("scales", [1, 1, 0.1])], {"mode": "nearest"},
     r"my_resize.*no output along axes \[2\]"),
])
def test_unsupported_or_ambiguous_attributes_are_refused(op, inputs, attrs, match):
    model = _model(op, inputs, attrs, [(1, 1, 4)], ["n", "c", "w"])
    with pytest.raises(gc.GraphcError, match=match):
        gc.load_onnx(model)
