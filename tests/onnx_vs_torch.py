"""Helpers checking one ONNX op imported by graphc against torch autograd and onnxruntime.

Input: an op type, named feeds (float arrays are differentiated, integer ones are not), a torch
function of the feeds giving the op's first output, the opset and the attributes. Output:
assertions that gc.load_onnx's graph, compiled, gives torch's y (and onnxruntime's), and that
its gradients of loss = sum(y * w), compiled and interpreted, are torch autograd's (w is a
random further input, so every element of y gets its own upstream gradient).
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

import graphc as gc

RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def model(op, feeds, y_shape, opset, attrs, loss=True, outputs=("y",), node_inputs=None):
    """outputs = op(feeds...) (y first; "" skips an optional output, and `node_inputs` lists the
    node's inputs when it skips some), and, with `loss`, loss = sum(y * w) with w a further
    input of y's shape."""
    def info(name, a):
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype),
                                             a.shape)
    nodes = [helper.make_node(op, node_inputs or list(feeds), list(outputs), **attrs)]
    inputs = [info(k, v) for k, v in feeds.items()]
    y_type = helper.np_dtype_to_tensor_dtype(next(iter(feeds.values())).dtype)
    outs = [helper.make_tensor_value_info("y", y_type, y_shape)] + \
        [helper.make_empty_tensor_value_info(o) for o in outputs[1:] if o]
    if loss:
        nodes += [helper.make_node("Mul", ["y", "w"], ["yw"]),
                  helper.make_node("ReduceSum", ["yw"], ["loss"], keepdims=0)]
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, y_shape))
        outs.append(helper.make_tensor_value_info("loss", TensorProto.FLOAT, []))
    graph = helper.make_graph(nodes, op, inputs, outs)
    made = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return onnx.shape_inference.infer_shapes(made) if len(outputs) > 1 else made


def onnxruntime(made, feeds, names=("y",)):
    session = ort.InferenceSession(made.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(list(names), feeds)


def _is_float(a):
    return np.asarray(a).dtype.kind == "f"


def torch_grads(feeds, torch_fn):
    """torch's y, the upstream weights w, and d sum(y * w) / d feed for every float feed."""
    tensors = {k: torch.tensor(v, requires_grad=_is_float(v)) for k, v in feeds.items()}
    y = torch_fn(*tensors.values())
    w = randn(*y.shape)
    (y * torch.tensor(w)).sum().backward()
    grads = {k: t.grad.numpy() for k, t in tensors.items() if t.requires_grad}
    return y.detach().numpy(), w, grads


def compare(graph, feeds, y, w, grads, rtol=1e-4, atol=1e-5):
    """graphc's y compiled, and its gradients of loss compiled and interpreted."""
    all_feeds = {**feeds, "w": w}
    got = gc.compile(graph).run(all_feeds)["y"]
    np.testing.assert_allclose(got, y, rtol=rtol, atol=atol)
    wrt = list(grads)
    _, compiled = gc.compile_value_and_grad(graph, "loss", wrt).run(all_feeds)
    interpreted = gc.interpret(gc.grad(graph, "loss", wrt), all_feeds)
    for name in wrt:
        for mine in (compiled, interpreted):
            assert np.all(np.isfinite(mine[name])), name
            np.testing.assert_allclose(mine[name], grads[name], rtol=rtol, atol=atol,
                                       err_msg=name)
    return got


def check(op, feeds, torch_fn, opset, ort_check=True, node_inputs=None, outputs=("y",),
          **attrs):
    """graphc's y and d loss / d (every float feed), compiled and interpreted, against torch
    autograd; y also against onnxruntime (when it runs this op at this opset)."""
    y, w, grads = torch_grads(feeds, torch_fn)
    made = model(op, feeds, list(y.shape), opset, attrs, outputs=outputs,
                 node_inputs=node_inputs)
    got = compare(gc.load_onnx(made), feeds, y, w, grads)
    if ort_check:
        np.testing.assert_allclose(got, onnxruntime(made, {**feeds, "w": w})[0], rtol=1e-4,
                                   atol=1e-5)


def check_function(fn, feeds, torch_fn, **attrs):
    """As `check`, for an ONNX op's function called on op-API Tensors (a form the importer
    does not pass on from a model)."""
    y, w, grads = torch_grads(feeds, torch_fn)
    b = gc.GraphBuilder(fn.__name__)
    args = [b.input(k, v.shape) for k, v in feeds.items()]
    out = fn(*args, **attrs)
    graph = b.build({"y": out, "loss": gc.sum(out * b.input("w", w.shape))})
    compare(graph, feeds, y, w, grads)


def refused(op, feeds, y_shape, match, opset=23, **attrs):
    with pytest.raises(gc.GraphcError, match=match):
        gc.load_onnx(model(op, feeds, y_shape, opset, attrs, loss=False))
