"""graphc as an ONNX backend (`onnx.backend.base.Backend`), for ONNX's own conformance tests.

Input: an ONNX ModelProto (or one NodeProto with its inputs) and input arrays. Output: the
outputs in the model's order and declared element types. `prepare` imports the model with
`load_onnx` and compiles it with `gc.compile` (native code, not the interpreter); identical
graphs (same text and initial values) share one compiled executable. Inputs and outputs keep
their ONNX element types (graphc has every one but float8 and the 4-bit types).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.backend.base import Backend, BackendRep, namedtupledict

from graphc.compile import Executable
from graphc.compile import compile as compile_graph
from graphc.errors import GraphcError
from graphc.ir import Graph
from graphc.onnx.importer import check_supported, load_onnx
from graphc.onnx.opsets import upgrade_opset
from graphc.onnx.table import normalize_static

_CACHE: dict[str, Executable] = {}


def _key(graph: Graph) -> str:
    h = hashlib.sha256(graph.to_text().encode())
    for name in sorted(graph.initializers):
        h.update(name.encode())
        h.update(np.ascontiguousarray(graph.initializers[name]).tobytes())
    return h.hexdigest()


def compile_cached(graph: Graph) -> Executable:
    """gc.compile, shared between identical graphs (the conformance suite repeats many)."""
    key = _key(graph)
    if key not in _CACHE:
        _CACHE[key] = compile_graph(graph)
    return _CACHE[key]


def static_inputs(model: onnx.ModelProto) -> list[str]:
    """Graph inputs whose values decide shapes (they reach an operand in `STATIC`, such as a
    Reshape shape or Reduce axes): graphc specialises the model on their values."""
    need: set[str] = set()
    for node in model.graph.node:
        need.update(node.input[k] for k in normalize_static(node) if k < len(node.input))
    for node in reversed(model.graph.node):
        if need.intersection(node.output):
            need.update(node.input)
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name in need and i.name not in inits]


def freeze(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of `model` whose inputs in `values` are initializers with those values."""
    frozen = onnx.ModelProto()
    frozen.CopyFrom(model)
    kept = [i for i in frozen.graph.input if i.name not in values]
    del frozen.graph.input[:]
    frozen.graph.input.extend(kept)
    frozen.graph.initializer.extend(
        numpy_helper.from_array(np.asarray(v), name) for name, v in values.items())
    return frozen


def unsupported(model: onnx.ModelProto) -> GraphcError | None:
    """The error load_onnx would give for model's value types or ops, or None."""
    where = model.graph.name or "model"
    try:  # on the model as load_onnx sees it: older opsets converted first (Scatter ->
        check_supported(upgrade_opset(model, where), where)  # ScatterElements)
    except GraphcError as err:
        return err
    return None


class GraphcRep(BackendRep):
    """A prepared model: `run(inputs)` feeds the compiled graph and returns its outputs.

    Inputs that decide shapes (`static_inputs`) are bound at the first run with their values,
    and the model is compiled once per distinct set of such values."""

    def __init__(self, model: onnx.ModelProto, input_shapes: dict | None = None):
        self.model, self.input_shapes = model, input_shapes
        error = unsupported(model)
        if error is not None:
            raise error
        inits = {t.name for t in model.graph.initializer}
        self.onnx_inputs = [i.name for i in model.graph.input if i.name not in inits]
        self.static = static_inputs(model)
        self.output_names = [o.name for o in model.graph.output]
        self._specialised: dict[bytes, tuple[Graph, Executable]] = {}
        if not self.static:
            self._compiled({})

    def _compiled(self, values: dict[str, np.ndarray]) -> tuple[Graph, Executable]:
        key = b"".join(name.encode() + str(v.dtype).encode() + str(v.shape).encode() +
                       v.tobytes() for name, v in sorted(values.items()))
        if key not in self._specialised:
            model = freeze(self.model, values) if values else self.model
            graph = load_onnx(model, self.input_shapes)
            self._specialised[key] = graph, compile_cached(graph)
        return self._specialised[key]

    def run(self, inputs: Any, **kwargs: Any) -> tuple:
        if isinstance(inputs, dict):
            given = dict(inputs)
        else:
            arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            given = dict(zip(self.onnx_inputs, arrays))
        given = {k: np.asarray(v) for k, v in given.items()}
        graph, exe = self._compiled({name: given[name] for name in self.static})
        feeds = {}
        for i in graph.inputs_with_role("input"):
            t, array = i.value.type, given[i.name]
            if array.shape != t.shape and array.size == t.size:
                array = array.reshape(t.shape)  # e.g. a [1] array fed to a scalar input
            feeds[i.name] = np.array(array, order="C")
        out = exe.run(feeds)
        results = [np.asarray(out[name]) for name in self.output_names]
        return namedtupledict("Outputs", self.output_names)(*results)


class GraphcBackend(Backend):
    """ONNX backend API over graphc: import, compile natively, run."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> GraphcRep:
        super().prepare(model, device, **kwargs)
        return GraphcRep(model, kwargs.get("input_shapes"))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Sequence[np.ndarray], device: str = "CPU",
                 outputs_info: Sequence[tuple] | None = None, **kwargs: Any) -> tuple:
        """Wrap the node in a one-node model (output types from `outputs_info` or inferred)."""
        super().run_node(node, inputs, device=device, outputs_info=outputs_info)
        arrays = [np.asarray(x) for x in inputs]
        graph_inputs = [helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for name, a in zip(node.input, arrays) if name]
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        proto = helper.make_graph([node], "node", graph_inputs, [
            helper.make_empty_tensor_value_info(name) for name in node.output if name])
        model = helper.make_model(proto, opset_imports=[helper.make_opsetid("", opset)])
        model = onnx.shape_inference.infer_shapes(model)
        if outputs_info:
            for out, (dtype, shape) in zip(model.graph.output, outputs_info):
                out.CopyFrom(helper.make_tensor_value_info(
                    out.name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape))
        return cls.prepare(model, device).run(arrays)

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        """False for models with ops or value types (strings, sequences, optionals, maps)
        graphc does not support. onnx's BackendTest asks this only for model-directory tests
        (it then skips the case); its node tests call `prepare`, which raises the GraphcError."""
        return cls.supports_device(device) and unsupported(model) is None

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


prepare = GraphcBackend.prepare
run_model = GraphcBackend.run_model
run_node = GraphcBackend.run_node
supports_device = GraphcBackend.supports_device
is_compatible = GraphcBackend.is_compatible
