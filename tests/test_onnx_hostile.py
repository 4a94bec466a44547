"""Hostile and broken ONNX files: each gives one clear GraphcError, never a crash or a hang.

Input: files made here (truncated, random, text, external data pointing outside the model's
directory or claiming more bytes than the tensor needs, unsupported ops). Output: the error and
the words it must contain.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphc as gc

DATA = os.path.join(os.path.dirname(__file__), "data")


def _mlp_bytes() -> bytes:
    with open(os.path.join(DATA, "torch_mlp.onnx"), "rb") as f:
        return f.read()


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, fraction):
    data = _mlp_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(gc.GraphcError, match="cut.onnx"):
        gc.load_onnx(path)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(tmp_path, seed):
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.default_rng(seed).bytes(4096))
    with pytest.raises(gc.GraphcError, match="random.onnx"):
        gc.load_onnx(path)


def test_text_file_and_empty_file_and_missing_file(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("graph mlp {\n  this is not protobuf\n}\n")
    with pytest.raises(gc.GraphcError, match="not .*ONNX"):
        gc.load_onnx(text)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(gc.GraphcError, match="not an ONNX model"):
        gc.load_onnx(empty)
    with pytest.raises(gc.GraphcError, match="no such ONNX file"):
        gc.load_onnx(tmp_path / "missing.onnx")
    with pytest.raises(gc.GraphcError, match="takes a path"):
        gc.load_onnx(42)


def _external_model(directory, location, shape=(4,), length=None, offset=0):
    """A model computing y = x + w where w lives in external data at `location`."""
    w = numpy_helper.from_array(np.zeros(shape, np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "offset": str(offset)}
    if length is not None:
        entries["length"] = str(length)
    for key, value in entries.items():
        w.external_data.add(key=key, value=value)
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "ext",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = os.path.join(directory, "ext.onnx")
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def test_external_data_inside_the_directory_is_read(tmp_path):
    np.arange(4, dtype=np.float32).tofile(tmp_path / "w.bin")
    graph = gc.load_onnx(_external_model(tmp_path, "w.bin"))
    out = gc.interpret(graph, {"x": np.ones(4, np.float32)})["y"]
    np.testing.assert_array_equal(out, [1, 2, 3, 4])


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin", "/etc/passwd",
                                      "..\\secret.bin"])
def test_external_data_outside_the_directory_is_rejected(tmp_path, location):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    np.zeros(4, np.float32).tofile(tmp_path / "secret.bin")
    path = _external_model(model_dir, location)
    with pytest.raises(gc.GraphcError, match="external data|checker"):
        gc.load_onnx(path)


def test_external_data_symlink_out_of_the_directory_is_rejected(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    np.zeros(4, np.float32).tofile(tmp_path / "secret.bin")
    os.symlink(tmp_path / "secret.bin", model_dir / "link.bin")
    with pytest.raises(gc.GraphcError, match="inside the model's directory"):
        gc.load_onnx(_external_model(model_dir, "link.bin"))


def test_external_data_of_the_wrong_length_is_rejected(tmp_path):
    np.zeros(1 << 16, np.float32).tofile(tmp_path / "big.bin")
    with pytest.raises(gc.GraphcError, match="does not match the 16 bytes"):
        gc.load_onnx(_external_model(tmp_path, "big.bin", length=1 << 40))
    with pytest.raises(gc.GraphcError, match="fewer than"):
        gc.load_onnx(_external_model(tmp_path, "big.bin", offset=(1 << 18) - 8))
    np.zeros(2, np.float32).tofile(tmp_path / "small.bin")
    with pytest.raises(gc.GraphcError, match="fewer than"):
        gc.load_onnx(_external_model(tmp_path, "small.bin"))


def test_unsupported_ops_are_listed_together_before_anything_is_built():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("NonZero", ["a"], ["b"], name="nz"),
             helper.make_node("Unique", ["x"], ["c"]),
             helper.make_node("Custom", ["x"], ["e"], domain="my.domain", name="mine")]
    graph = helper.make_graph(
        nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in ("a", "c", "e")],
        [numpy_helper.from_array(np.array([2], np.int64), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("my.domain", 1)])
    with pytest.raises(gc.GraphcError) as info:
        gc.load_onnx(model)
    text = str(info.value)
    assert "3 node(s)" in text
    for row in ("(ai.onnx, NonZero, nz, opset 17)", "(ai.onnx, Unique, Unique#2, opset 17)",
                "(my.domain, Custom, mine, opset 1)"):
        assert row in text


def test_unsupported_element_types_and_bad_references():
    x = helper.make_tensor_value_info("x", TensorProto.STRING, [2])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "s", [x],
                              [helper.make_tensor_value_info("y", TensorProto.STRING, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(gc.GraphcError, match="STRING is not supported"):
        gc.load_onnx(model)
    proto = onnx.ModelProto()
    proto.ir_version = 8
    with pytest.raises(gc.GraphcError, match="not an ONNX model"):
        gc.load_onnx(proto)


def _constant_with_external_data(directory, location):
    """model.onnx in `directory` whose Constant node's value is 4 floats in `location`."""
    value = numpy_helper.from_array(np.zeros(4, np.float32), "c")
    value.ClearField("raw_data")
    value.data_location = TensorProto.EXTERNAL
    value.external_data.add(key="location", value=location)
    node = helper.make_node("Constant", [], ["c"], value=value)
    add = helper.make_node("Add", ["x", "c"], ["y"])
    graph = helper.make_graph([node, add], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    path = directory / "model.onnx"
    path.write_bytes(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def test_constant_external_data_is_read_beside_the_model_never_from_the_cwd(tmp_path,
                                                                            monkeypatch):
    model_dir, cwd = tmp_path / "model", tmp_path / "cwd"
    model_dir.mkdir()
    cwd.mkdir()
    (model_dir / "w.bin").write_bytes(np.array([1, 2, 3, 4], np.float32).tobytes())
    (cwd / "w.bin").write_bytes(np.array([9, 9, 9, 9], np.float32).tobytes())
    monkeypatch.chdir(cwd)
    path = _constant_with_external_data(model_dir, "w.bin")
    y = gc.compile(gc.load_onnx(str(path))).run({"x": np.zeros(4, np.float32)})["y"]
    np.testing.assert_array_equal(y, [1, 2, 3, 4])
    (model_dir / "w.bin").unlink()
    (model_dir / "w.bin").symlink_to(cwd / "w.bin")  # a link out of the model's directory
    with pytest.raises(gc.GraphcError, match=r"attribute 'value' \(external data 'w.bin'\).*"
                                             r"inside the model's directory"):
        gc.load_onnx(str(path))
    for bad in ("../cwd/w.bin", str(cwd / "w.bin")):
        with pytest.raises(gc.GraphcError, match="relative path inside the model's directory"):
            gc.load_onnx(str(_constant_with_external_data(model_dir, bad)))
