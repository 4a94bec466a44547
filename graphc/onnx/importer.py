"""Importing ONNX models: `load_onnx(path_or_model, input_shapes) -> Graph`.

Input: an ONNX file path (or a `ModelProto`) and optional static shapes for inputs with symbolic
dims. Output: a verified graphc `Graph` whose inputs keep their ONNX names, whose initializers
are params, state or folded constants (graphc/onnx/initializers.py) under their ONNX names, whose
outputs are the ONNX graph outputs, and whose every node carries the location
`<model file name>:<ONNX node name or op_type#index>`.

Opsets >= 13 are imported natively, older ones are first raised to 13 with onnx's version
converter. Element types keep their width (graphc/onnx/dtypes.py; float8 and 4-bit types are
refused, naming the tensor). Everything that depends only on shapes or constants (Constant,
Shape, Size, ConstantOfShape and any node whose inputs are all constant) is folded at import:
shapes are static. The per-op table is graphc/onnx/table.py; files are read safely by
graphc/onnx/reading.py, opsets raised by graphc/onnx/opsets.py, initializers classified by
graphc/onnx/initializers.py; this module prunes to the requested `outputs`, binds shapes, checks
support up front (ops and value types, in one error) and walks the nodes.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper

from graphc.builder import GraphBuilder, Tensor
from graphc.errors import GraphcError, located
from graphc.ir import Graph
from graphc.onnx import initializers
from graphc.onnx import ops as onnx_ops
from graphc.onnx import table as onnx_table
from graphc.onnx.dtypes import onnx_dtype
from graphc.onnx.initializers import Choice, Role
from graphc.onnx.opsets import MIN_OPSET, default_opset, upgrade_opset
from graphc.onnx.reading import attribute_label, read_initializers, read_model, tensor_array


def load_onnx(model: str | os.PathLike | onnx.ModelProto,
              input_shapes: Mapping[str, tuple[int, ...]] | None = None,
              outputs: Sequence[str] | None = None, *, trainable: Choice = None,
              frozen: Choice = None) -> Graph:
    """Import an ONNX model as a graphc Graph (see the module docstring). `outputs` names the
    values to import as the graph's outputs (graph outputs or intermediate values); the model
    is first pruned to the nodes they depend on, so ops and types graphc does not support
    elsewhere (a scikit-learn ZipMap, a label lookup) do not stop the import. `trainable` and
    `frozen` (None, a list of initializer names, or a callable name -> bool) choose which
    initializers are trained (graphc/onnx/initializers.py; `describe_onnx` shows the choice)."""
    proto, file_name, base_dir = read_model(model)
    if outputs is not None:
        proto = prune(proto, list(outputs), file_name)
    proto = upgrade_opset(proto, file_name)
    check_supported(proto, file_name)
    values = read_initializers(proto, base_dir, file_name)
    proto, values = initializers.untie_copies(proto, values)
    roles = initializers.classify(proto, values, file_name, trainable, frozen,
                                  onnx_table.STATIC)
    return _Importer(proto, file_name, dict(input_shapes or {}), values, roles, base_dir).run()


def describe_onnx(model: str | os.PathLike | onnx.ModelProto, *, trainable: Choice = None,
                  frozen: Choice = None) -> str:
    """The import report: every initializer's class (param, state, constant) and the reason,
    as `load_onnx` with the same choices would import it."""
    proto, file_name, base_dir = read_model(model)
    proto = upgrade_opset(proto, file_name)
    values = read_initializers(proto, base_dir, file_name)
    proto, values = initializers.untie_copies(proto, values)
    roles = initializers.classify(proto, values, file_name, trainable, frozen,
                                  onnx_table.STATIC)
    return f"{file_name}: " + initializers.describe(roles, values)


# --- support check, before anything is built -----------------------------------------------
def _value_type_problem(vi: onnx.ValueInfoProto) -> str | None:
    """Why graphc cannot hold a graph input/output (a sequence, map, optional or string...)."""
    kind = vi.type.WhichOneof("value")
    if kind is None:  # an output named through load_onnx(outputs=...): graphc infers its type
        return None
    if kind != "tensor_type":
        return f"an ONNX {kind.replace('_type', '')} value, but graphc values are tensors"
    try:
        onnx_dtype(vi.type.tensor_type.elem_type, "")
    except GraphcError as err:
        return str(err).lstrip(": ")
    return None


def node_label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}#{index}"


def check_supported(proto: onnx.ModelProto, where: str) -> None:
    """One GraphcError listing every unsupported (domain, op_type, node, opset) and every graph
    input/output whose type graphc does not have."""
    versions = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    ops = []
    for i, node in enumerate(proto.graph.node):
        domain = node.domain or "ai.onnx"
        if not onnx_table.supported(node.op_type, domain):
            ops.append(f"  ({domain}, {node.op_type}, {node_label(node, i)}, opset "
                       f"{versions.get(domain, '?')})")
    types = [f"  {role} {vi.name!r}: {problem}"
             for role, values in (("input", proto.graph.input), ("output", proto.graph.output))
             for vi in values if (problem := _value_type_problem(vi)) is not None]
    parts = []
    if ops:
        parts.append(f"{len(ops)} node(s) use ops graphc does not support (domain, op type, "
                     "node, opset):")
        parts += ops
    if types:
        parts += [f"{len(types)} graph input(s)/output(s) have types graphc does not support:",
                  *types]
    if parts:
        raise GraphcError(f"{where}: " + "\n".join(parts) + "\nTo import the part of the model "
                          "graphc supports, name the tensors you need: load_onnx(model, "
                          "outputs=[...]) keeps only the nodes they depend on (e.g. the "
                          "probabilities or logits before a ZipMap).")


def prune(proto: onnx.ModelProto, outputs: Sequence[str], where: str) -> onnx.ModelProto:
    """A copy of `proto` whose outputs are the named values (graph outputs or any node's
    outputs) and which keeps only the nodes, inputs and initializers they depend on."""
    g = proto.graph
    made = {n for node in g.node for n in node.output} | {i.name for i in g.input} | \
        {t.name for t in g.initializer}
    unknown = [n for n in outputs if n not in made]
    if unknown or not outputs:
        missing = ", ".join(f"no output {n!r}" for n in unknown) or "no outputs named"
        raise GraphcError(f"{where}: load_onnx(outputs={list(outputs)}): {missing} (no node, "
                          f"input or initializer makes it); the model's values are "
                          f"{sorted(made)}")
    need, keep = set(outputs), []
    for node in reversed(g.node):
        if need.intersection(node.output):
            keep.append(node)
            need.update(n for n in node.input if n)
    typed = {vi.name: vi for vi in (*g.output, *g.value_info, *g.input)}
    pruned = onnx.ModelProto()
    pruned.CopyFrom(proto)
    for field, kept in (("node", keep[::-1]),
                        ("input", [i for i in g.input if i.name in need]),
                        ("initializer", [t for t in g.initializer if t.name in need]),
                        ("output", [typed.get(n, onnx.ValueInfoProto(name=n)) for n in outputs])):
        del getattr(pruned.graph, field)[:]
        getattr(pruned.graph, field).extend(kept)
    return pruned


# --- the walk over nodes ----------------------------------------------------------------------
class _Importer:
    """Builds the graph: `env` maps ONNX value names to Tensors or (folded) NumPy arrays."""

    def __init__(self, proto: onnx.ModelProto, file_name: str,
                 input_shapes: dict[str, tuple[int, ...]], values: dict[str, np.ndarray],
                 roles: dict[str, Role], base_dir: str | None = None):
        self.proto, self.file_name, self.base_dir = proto, file_name, base_dir
        self.input_shapes, self.values, self.roles = input_shapes, values, roles
        self.opset = default_opset(proto) or MIN_OPSET
        self.b = GraphBuilder(proto.graph.name or os.path.splitext(file_name)[0] or "onnx")
        self.env: dict[str, Tensor | np.ndarray] = {}

    def run(self) -> Graph:
        g = self.proto.graph
        for name, array in self.values.items():
            kind = self.roles[name].kind
            self.env[name] = array if kind == "constant" else \
                (self.b.param if kind == "param" else self.b.state)(name, array)
        for vi in g.input:
            if vi.name not in self.env:
                self.env[vi.name] = self._input(vi)
        unknown = sorted(set(self.input_shapes) - {vi.name for vi in g.input})
        if unknown:
            raise GraphcError(f"{self.file_name}: input_shapes names {unknown}, which are not "
                              f"inputs of the model ({[vi.name for vi in g.input]})")
        for i, node in enumerate(g.node):
            self._node(i, node)
        outputs = {}
        for vo in g.output:
            value = self._value(vo.name, f"graph output {vo.name!r}")
            outputs[vo.name] = value if isinstance(value, Tensor) else \
                onnx_ops.const(self.b, value)
        return self.b.build(outputs=outputs)

    def _input(self, vi: onnx.ValueInfoProto) -> Tensor:
        where = f"{self.file_name}: input {vi.name!r}"
        if not vi.type.HasField("tensor_type"):
            raise GraphcError(f"{where}: only tensor inputs are supported")
        tt = vi.type.tensor_type
        dtype = onnx_dtype(tt.elem_type, where)
        if vi.name in self.input_shapes:
            shape = tuple(int(d) for d in self.input_shapes[vi.name])
            declared = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if tt.HasField("shape") and (len(declared) != len(shape) or any(
                    d is not None and d != s for d, s in zip(declared, shape))):
                raise GraphcError(f"{where}: input_shapes gives {list(shape)}, which does not "
                                  f"match the declared shape {declared}")
            return self.b.input(vi.name, shape, dtype)
        if not tt.HasField("shape"):
            raise GraphcError(f"{where} has no shape; bind it with input_shapes={{"
                              f"{vi.name!r}: (...)}}")
        shape = []
        for axis, d in enumerate(tt.shape.dim):
            if not d.HasField("dim_value"):
                sym = d.dim_param or "?"
                raise GraphcError(f"{where} has the symbolic dim {sym!r} (axis {axis}); graphc "
                                  f"shapes are static: bind it with input_shapes={{"
                                  f"{vi.name!r}: (...)}}")
            shape.append(d.dim_value)
        return self.b.input(vi.name, tuple(shape), dtype)

    def _value(self, name: str, what: str) -> Tensor | np.ndarray:
        if name not in self.env:
            raise GraphcError(f"{self.file_name}: {what} reads {name!r}, which no node, input "
                              f"or initializer defines before it")
        return self.env[name]

    def _node(self, index: int, node: onnx.NodeProto) -> None:
        loc = f"{self.file_name}:{node_label(node, index)}"
        inputs = [self._value(n, f"node {node_label(node, index)}") if n else None
                  for n in node.input]
        try:
            attrs = {a.name: _attribute(a, self.base_dir, self.file_name,
                                        attribute_label(node, index, a.name))
                     for a in node.attribute}
        except Exception as err:  # noqa: BLE001 (third-party failures become GraphcErrors)
            raise GraphcError(located(f"cannot read the attributes of {node.op_type}: {err}",
                                      loc)) from None
        with self.b.at(loc):
            try:
                results = onnx_table.apply(node, self.opset, inputs, attrs)
            except GraphcError as err:
                raise type(err)(located(str(err), loc, _shown(node))) from None
            except (TypeError, ValueError, IndexError, KeyError) as err:
                raise GraphcError(located(f"{node.op_type}: {err}", loc, _shown(node))) from None
        for name, result in zip(node.output, results):
            if name:
                self.env[name] = result
        self._update_state(node, results, loc)
        missing = [n for n in node.output[len(results):] if n]
        if missing:
            raise GraphcError(located(f"{node.op_type}: graphc does not produce the optional "
                                      f"output(s) {missing}", loc, _shown(node)))


    def _update_state(self, node: onnx.NodeProto, results: tuple, loc: str) -> None:
        """A node that returns the new value of a state operand (a training-mode
        BatchNormalization's running statistics) updates that state after every step."""
        for k, j in initializers.STATE_OPERANDS.get(node.op_type, {}).items():
            name = node.input[k] if k < len(node.input) else ""
            if j >= len(results) or self.roles.get(name, Role("", "")).kind != "state":
                continue
            if name in self.b.updates:
                raise GraphcError(located(f"{node.op_type}: state {name!r} is updated by two "
                                          f"nodes", loc, _shown(node)))
            self.b.update(name, results[j])


def _attribute(a: onnx.AttributeProto, base_dir: str | None, where: str, kind: str) -> Any:
    value = helper.get_attribute_value(a)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, onnx.TensorProto):  # external data from the model's directory only
        return tensor_array(value, base_dir, where, kind)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8") for v in value]
    if isinstance(value, (onnx.GraphProto, onnx.SparseTensorProto)):
        raise GraphcError(f"attribute {a.name!r}: graphs and sparse tensors are not supported")
    return value


def _shown(node: onnx.NodeProto) -> str:
    args = ", ".join(node.input)
    return f"{', '.join(node.output)} = {node.op_type}({args})"
