"""ONNX LSTM, GRU and RNN, unrolled at import (graphc/onnx/rnn_ops.py), against torch and ORT.

Input: torch.nn.LSTM / GRU / RNN modules exported with torch.onnx.export (legacy exporter, opset
17), and single-node models made here with onnx.helper for what torch never exports
(sequence_lens, clip, input_forget, peepholes, other activations, GRU without
linear_before_reset, layout 1). Output: checks of graphc's compiled forward pass against
onnxruntime (1e-4 relative), of its gradients against torch's autograd or central differences,
that the weights W, R, B are params, and that unsupported forms are refused with a GraphcError.
"""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import graphc as gc
from graphc.builder import GraphBuilder

# torch's gate order -> ONNX's: LSTM (i, f, g, o) -> (i, o, f, c); GRU (r, z, n) -> (z, r, h)
GATE_ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN": [0]}
INPUTS = {"LSTM": ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"],
          "GRU": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
          "RNN": ["X", "W", "R", "B", "sequence_lens", "initial_h"]}
OUTPUTS = {"LSTM": ["Y", "Y_h", "Y_c"], "GRU": ["Y", "Y_h"], "RNN": ["Y", "Y_h"]}


def _relative(got, want):
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))


def _ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def _with_weighted_sum(graph, seed=0):
    """`graph` plus a scalar "loss": the sum of every output times fixed random weights."""
    rng = np.random.default_rng(seed)
    b, tensors = GraphBuilder.extend(graph)
    outputs = {k: tensors[v.name] for k, v in graph.outputs.items()}
    terms = [gc.sum(y * gc.constant(b, rng.standard_normal(y.shape), y.dtype))
             for y in outputs.values()]
    loss = terms[0]
    for term in terms[1:]:
        loss = loss + term
    return b.build(outputs={**outputs, "loss": loss})


# --- torch modules -----------------------------------------------------------------------------
# (op, module options, gradients from compiled code rather than the interpreter, the oracle)
TORCH_CASES = [
    ("LSTM", {"num_layers": 2, "bidirectional": True}, False),
    ("LSTM", {"num_layers": 1, "batch_first": True}, True),
    ("GRU", {"num_layers": 2, "bidirectional": True, "batch_first": True}, False),
    ("GRU", {"num_layers": 1}, True),
    ("RNN", {"num_layers": 2, "nonlinearity": "tanh", "batch_first": True}, False),
    ("RNN", {"num_layers": 1, "nonlinearity": "relu", "bidirectional": True}, True),
]


def _export(kind, options, tmp_path):
    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(3, 4, **options)
    x = torch.randn(2, 3, 3)  # [batch, time, 3] with batch_first, else [time, batch, 3]
    path = str(tmp_path / f"{kind.lower()}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), path, dynamo=False, opset_version=17,
                          input_names=["x"])
    return module, x, path


def _in_onnx_layout(kind, tensors, layer, bidirectional):
    """(W, R, B) of one layer as the ONNX node holds them, from torch's per-parameter arrays
    (the weights, or their gradients: the exporter only reorders and stacks them)."""
    order = GATE_ORDER[kind]

    def reorder(w):
        return np.concatenate([np.split(w, len(order))[k] for k in order])

    per = [(reorder(tensors[f"weight_ih_l{layer}{s}"]), reorder(tensors[f"weight_hh_l{layer}{s}"]),
            np.concatenate([reorder(tensors[f"bias_ih_l{layer}{s}"]),
                            reorder(tensors[f"bias_hh_l{layer}{s}"])]))
           for s in [""] + (["_reverse"] if bidirectional else [])]
    return tuple(np.stack(parts) for parts in zip(*per))


@pytest.mark.parametrize("kind,options,compiled", TORCH_CASES,
                         ids=[f"{k}-{'-'.join(f'{a}={v}' for a, v in o.items())}"
                              for k, o, _ in TORCH_CASES])
def test_torch_module_forward_and_gradients(kind, options, compiled, tmp_path):
    module, x, path = _export(kind, options, tmp_path)
    proto = onnx.load(path)
    nodes = [n for n in proto.graph.node if n.op_type == kind]
    assert len(nodes) == options["num_layers"]
    graph = _with_weighted_sum(gc.load_onnx(path))
    roles = {i.name: i.role for i in graph.inputs}
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    weights = {n: p.detach().numpy() for n, p in module.named_parameters()}
    both = module.bidirectional
    for layer, node in enumerate(nodes):  # W, R, B are the torch weights, and params
        for name, want in zip(node.input[1:4], _in_onnx_layout(kind, weights, layer, both)):
            assert roles[name] == "param", name
            np.testing.assert_array_equal(inits[name], want)

    feeds = {"x": x.numpy()}
    want = _ort(proto, feeds)
    params = [i.name for i in graph.inputs_with_role("param")]
    if compiled:
        loss, grads = gc.compile_value_and_grad(graph, "loss", params).run(feeds)
    else:
        grads = gc.interpret(gc.grad(graph, "loss", params), feeds)
        loss = gc.interpret(graph, feeds)["loss"]
    got = gc.compile(graph).run(feeds)
    for name, value in want.items():
        assert got[name].shape == value.shape
        assert _relative(got[name], value) < 1e-4, name

    y, state = module(x)
    outputs = [y, *(state if isinstance(state, tuple) else (state,))]
    rng = np.random.default_rng(0)  # the weights _with_weighted_sum drew, in output order
    weights = [torch.from_numpy(rng.standard_normal(tuple(o.shape))) for o in outputs]
    torch_loss = sum((o.double() * w).sum() for o, w in zip(outputs, weights))
    torch_loss.backward()
    assert float(loss) == pytest.approx(float(torch_loss.detach()), rel=1e-4, abs=1e-4)
    torch_grads = {n: p.grad.numpy() for n, p in module.named_parameters()}
    for layer, node in enumerate(nodes):
        for name, g in zip(node.input[1:4], _in_onnx_layout(kind, torch_grads, layer, both)):
            assert _relative(grads[name], g) < 1e-4, f"layer {layer} {name}"


# --- single nodes: what torch does not export --------------------------------------------------
def _node_model(op, x, operands, **attrs):
    """One `op` node reading input X and `operands` (initializers; int ones are constants)."""
    names = INPUTS[op]
    used = [n if n == "X" or n in operands else "" for n in names]
    while not used[-1]:
        used.pop()
    node = helper.make_node(op, used, OUTPUTS[op], **attrs)
    inits = [numpy_helper.from_array(v, k) for k, v in operands.items()]
    directions, hidden = operands["R"].shape[0], operands["R"].shape[2]
    if attrs.get("layout"):
        y, state = [x.shape[0], x.shape[1], directions, hidden], [x.shape[0], directions, hidden]
    else:
        y, state = [x.shape[0], directions, x.shape[1], hidden], [directions, x.shape[1], hidden]
    graph = helper.make_graph(
        [node], "rnn", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, y if n == "Y" else state)
         for n in OUTPUTS[op]], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def _operands(op, directions, hidden, steps, batch, size, seed, peepholes=False, states=True,
              lengths=None):
    rng = np.random.default_rng(seed)
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]

    def f32(*shape):
        return rng.uniform(-1, 1, shape).astype(np.float32)

    x = f32(steps, batch, size) * 2
    ops = {"W": f32(directions, gates * hidden, size), "R": f32(directions, gates * hidden, hidden),
           "B": f32(directions, 2 * gates * hidden)}
    if lengths is not None:
        ops["sequence_lens"] = np.array(lengths, np.int32)
    if states:
        ops["initial_h"] = f32(directions, batch, hidden)
        if op == "LSTM":
            ops["initial_c"] = f32(directions, batch, hidden)
    if peepholes:
        ops["P"] = f32(directions, 3 * hidden)
    return x, ops


# (op, attributes, operands: lengths = sequence_lens, peepholes, initial states or not)
NODE_CASES = [
    ("LSTM", {"direction": "bidirectional"}, {"peepholes": True, "lengths": [3, 5, 1]}),
    ("LSTM", {"direction": "reverse", "clip": 0.8, "input_forget": 1,
              "activations": ["HardSigmoid", "LeakyRelu", "Elu"], "activation_alpha": [0.3, 0.2],
              "activation_beta": [0.6]}, {"lengths": [5, 2, 4]}),
    ("LSTM", {"activations": ["Sigmoid", "ScaledTanh", "Affine"], "activation_alpha": [1.5, 0.7],
              "activation_beta": [0.8, 0.1]}, {"peepholes": True, "states": False}),
    ("GRU", {"direction": "bidirectional", "linear_before_reset": 0}, {"lengths": [4, 5, 2]}),
    ("GRU", {"direction": "reverse", "linear_before_reset": 1, "clip": 0.7},
     {"lengths": [1, 5, 3]}),
    ("GRU", {"linear_before_reset": 1, "activations": ["Softsign", "Softplus"]},
     {"states": False}),
    ("RNN", {"direction": "bidirectional", "activations": ["ThresholdedRelu", "LeakyRelu"],
             "activation_alpha": [0.2, 0.1]}, {"lengths": [2, 5, 5]}),
    ("RNN", {"direction": "reverse", "clip": 0.5}, {"lengths": [3, 1, 5]}),
]


@pytest.mark.parametrize("op,attrs,shape", NODE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(NODE_CASES)])
def test_node_matches_onnxruntime(op, attrs, shape):
    directions = 2 if attrs.get("direction") == "bidirectional" else 1
    x, operands = _operands(op, directions, 3, 5, 3, 2, seed=len(str(attrs)), **shape)
    model = _node_model(op, x, operands, hidden_size=3, **attrs)
    want = _ort(model, {"X": x})
    got = gc.interpret(gc.load_onnx(model), {"X": x})
    for name in OUTPUTS[op]:
        assert _relative(got[name], want[name]) < 1e-4, name


@pytest.mark.parametrize("op,attrs,shape", [NODE_CASES[i] for i in (0, 1, 3, 4, 7)],
                         ids=[f"{NODE_CASES[i][0]}-{i}" for i in (0, 1, 3, 4, 7)])
def test_node_gradients_match_central_differences(op, attrs, shape):
    directions = 2 if attrs.get("direction") == "bidirectional" else 1
    x, operands = _operands(op, directions, 2, 4, 3, 2, seed=1,
                            **{**shape, "lengths": [2, 4, 1]})
    graph = _with_weighted_sum(gc.load_onnx(_node_model(op, x, operands, hidden_size=2,
                                                        **attrs)))
    params = [i.name for i in graph.inputs_with_role("param")]
    assert {"W", "R", "B"} <= set(params)
    gc.check_grads(graph, "loss", params, {"X": x}, tol=1e-5)


def test_layout_1_is_layout_0_transposed():
    """onnxruntime has no batch-major LSTM: layout 1 is checked against graphc's layout 0."""
    x, operands = _operands("LSTM", 2, 3, 4, 2, 3, seed=5, peepholes=True, lengths=[4, 2])
    batchwise = {**operands, "initial_h": operands["initial_h"].transpose(1, 0, 2),
                 "initial_c": operands["initial_c"].transpose(1, 0, 2)}
    timewise = gc.interpret(gc.load_onnx(_node_model(
        "LSTM", x, operands, direction="bidirectional")), {"X": x})
    xb = x.transpose(1, 0, 2)
    got = gc.compile(gc.load_onnx(_node_model("LSTM", xb, batchwise, direction="bidirectional",
                                              layout=1))).run({"X": xb})
    np.testing.assert_allclose(got["Y"], timewise["Y"].transpose(2, 0, 1, 3), rtol=1e-5,
                               atol=1e-6)
    for name in ("Y_h", "Y_c"):
        np.testing.assert_allclose(got[name], timewise[name].transpose(1, 0, 2), rtol=1e-5,
                                   atol=1e-6)


# --- refusals ----------------------------------------------------------------------------------
def test_sequence_lens_computed_by_the_graph_is_refused():
    x, operands = _operands("GRU", 1, 3, 4, 2, 2, seed=0, states=False)
    node = helper.make_node("GRU", ["X", "W", "R", "B", "lens"], ["Y", "Y_h"], hidden_size=3)
    graph = helper.make_graph(
        [node], "rnn", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape),
                        helper.make_tensor_value_info("lens", TensorProto.INT32, [2])],
        [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, 2, 3])],
        [numpy_helper.from_array(v, k) for k, v in operands.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    with pytest.raises(gc.GraphcError, match="GRU: operand 4 must be known at import time"):
        gc.load_onnx(model)


@pytest.mark.parametrize("op,attrs,lengths,message", [
    ("RNN", {"activations": ["Gelu"]}, None, "does not support the activation 'Gelu'"),
    ("RNN", {"activations": ["Affine"], "activation_alpha": [2.0]}, None,
     "Affine has no default for its activation_beta"),
    ("LSTM", {"activation_alpha": [0.5]}, None, "1/0 value.s. more than the activations"),
    ("GRU", {"activations": ["Sigmoid"]}, None, "2 per direction"),
    ("GRU", {"direction": "bidirectional"}, None, r"W must be \[num_directions, 3\*hidden"),
    ("LSTM", {"clip": -1.0}, None, "clip must be positive"),
    ("RNN", {}, [3, 0], "sequence_lens must hold 2 lengths from 1"),
    ("GRU", {"hidden_size": 5}, None, "hidden_size=5, but R is"),
])
def test_unsupported_forms_are_refused(op, attrs, lengths, message):
    x, operands = _operands(op, 1, 3, 4, 2, 2, seed=0, states=False, lengths=lengths)
    with pytest.raises(gc.GraphcError, match=message):
        gc.load_onnx(_node_model(op, x, operands, **attrs))
