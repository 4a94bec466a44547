"""ONNX sequences inside a model, resolved at import: split a tensor, pick, insert, concatenate.

Input: small models whose sequences live between their nodes (as torch's dynamo exporter writes
`x.split(n, dim)`), and models with a sequence as a graph input. Output: pass/fail that graphc's
compiled results and gradients match onnxruntime and central differences, and that sequence
graph inputs/outputs and positions out of range are refused with a GraphcError.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphc as gc


def _model(nodes, inits, out_shape):
    graph = helper.make_graph(
        nodes, "seq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _int(v):
    return np.array(v, np.int64)


CASES = {
    # q, k, v = x.split(2, dim=1); y = q * k + v
    "split_pick": ([helper.make_node("SplitToSequence", ["x", "two"], ["s"], axis=1),
                    *[helper.make_node("SequenceAt", ["s", f"i{i}"], [f"p{i}"]) for i in range(3)],
                    helper.make_node("Mul", ["p0", "p1"], ["m"]),
                    helper.make_node("Add", ["m", "p2"], ["y"])],
                   {"two": _int(2), "i0": _int(0), "i1": _int(1), "i2": _int(-1)}, [2, 2]),
    # unequal sizes; the first part erased, x inserted in front, all concatenated
    "sizes_concat": ([helper.make_node("SplitToSequence", ["x", "sizes"], ["s"], axis=1),
                      helper.make_node("SequenceErase", ["s", "i0"], ["t"]),
                      helper.make_node("SequenceInsert", ["t", "x", "i0"], ["u"]),
                      helper.make_node("ConcatFromSequence", ["u"], ["y"], axis=1)],
                     {"sizes": _int([1, 2, 3]), "i0": _int(0)}, [2, 11]),
    "stack": ([helper.make_node("SplitToSequence", ["x"], ["s"], axis=1, keepdims=0),
               helper.make_node("SequenceLength", ["s"], ["n"]),
               helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
               helper.make_node("ConcatFromSequence", ["s"], ["c"], axis=0, new_axis=1),
               helper.make_node("Mul", ["c", "nf"], ["y"])], {}, [6, 2]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_onnxruntime_and_differentiates(name):
    nodes, inits, shape = CASES[name]
    model = _model(nodes, inits, shape)
    x = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    graph = gc.load_onnx(model)
    np.testing.assert_allclose(gc.compile(graph).run({"x": x})["y"], want, rtol=1e-6)
    b, tensors = gc.GraphBuilder.extend(graph)
    loss = gc.sum(tensors[graph.outputs["y"].name] * tensors[graph.outputs["y"].name])
    scalar = b.build({"loss": loss})
    err = gc.check_grads(_with_param_input(scalar, x), "loss", ["x"], {}, tol=1e-3)
    assert err < 1e-3


def _with_param_input(graph, x):
    """`graph` with its input x turned into a param holding `x`."""
    from graphc.ir import GraphInput

    inputs = tuple(GraphInput(i.value, "param") if i.name == "x" else i for i in graph.inputs)
    return graph.replace(inputs=inputs, initializers={**graph.initializers, "x": x})


def test_sequence_graph_inputs_and_bad_positions_are_refused():
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("SequenceAt", ["s", "i"], ["y"])], "g", [seq],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
                              [numpy_helper.from_array(_int(0), "i")])
    with pytest.raises(gc.GraphcError, match="sequence"):
        gc.load_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    nodes, inits, shape = CASES["split_pick"]
    with pytest.raises(gc.GraphcError, match="position 5 is outside a sequence of length 3"):
        gc.load_onnx(_model(nodes, {**inits, "i2": _int(5)}, shape))
