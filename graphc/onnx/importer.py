"""Importing ONNX models: `load_onnx(path_or_model, input_shapes) -> Graph`.

Input: an ONNX file path (or a `ModelProto`) and optional static shapes for inputs with symbolic
dims. Output: a verified graphc `Graph` whose inputs keep their ONNX names, whose float
initializers are params under their ONNX names (integer ones are folded constants), whose
outputs are the ONNX graph outputs, and whose every node carries the location
`<model file name>:<ONNX node name or op_type#index>`.

Opsets >= 13 are imported natively, older ones are first raised to 13 with onnx's version
converter. graphc computes in f32/f64/i64/bool, so narrower integer types widen to i64 and
float16 and bfloat16 to f32 (graphc/onnx/dtypes.py). Everything that depends only on shapes or constants (Constant,
Shape, Size, ConstantOfShape and any node whose inputs are all constant) is folded at import:
shapes are static. The per-op table is graphc/onnx/table.py; this module reads files safely
(hostile input gives a GraphcError, external data never leaves the model's directory), prunes
to the requested `outputs`, binds shapes, checks support up front (ops and value types, in one
error) and walks the nodes.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphc.builder import GraphBuilder, Tensor
from graphc.errors import GraphcError, located
from graphc.ir import Graph
from graphc.onnx import initializers
from graphc.onnx import ops as onnx_ops
from graphc.onnx import table as onnx_table
from graphc.onnx.dtypes import onnx_dtype
from graphc.onnx.initializers import Choice, Role
from graphc.onnx.upsample_ops import keep_legacy_resize

MIN_OPSET = 13
MAX_FILE_BYTES = 2**31  # protobuf's own limit for one message

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
    return _Importer(proto, file_name, dict(input_shapes or {}), values, roles).run()


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


# --- reading files -------------------------------------------------------------------------
def read_model(model: Any) -> tuple[onnx.ModelProto, str, str | None]:
    """(model, file name for locations, directory external data may come from)."""
    if isinstance(model, onnx.ModelProto):
        _check_model(model, f"{model.graph.name or 'model'}")
        return model, model.graph.name or "model", None
    if not isinstance(model, (str, os.PathLike)):
        raise GraphcError(f"load_onnx takes a path or an onnx.ModelProto, got "
                          f"{type(model).__name__}")
    path = os.fspath(model)
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise GraphcError(f"{path}: no such ONNX file")
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise GraphcError(f"{path}: {size} bytes is over protobuf's 2 GiB limit; keep large "
                          f"tensors in external data files")
    with open(path, "rb") as f:
        data = f.read()
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as err:  # noqa: BLE001 (third-party failures become GraphcErrors)
        raise GraphcError(f"{path}: not a valid ONNX file (truncated or not protobuf): "
                          f"{err}") from None
    base_dir = os.path.dirname(os.path.abspath(path))
    for t in proto.graph.initializer:  # validated before the checker looks at the files
        if t.data_location == TensorProto.EXTERNAL:
            _external_source(t, base_dir, path)
    _check_model(proto, path, checked_path=path)
    return proto, name, base_dir


def _check_model(proto: onnx.ModelProto, where: str, checked_path: str | None = None) -> None:
    if not proto.HasField("graph") or proto.ir_version <= 0 or not proto.opset_import:
        raise GraphcError(f"{where}: not an ONNX model (no graph, IR version or opset); the "
                          f"file may be truncated or of another format")
    try:
        # from a path the checker resolves external data against the model's directory
        onnx.checker.check_model(checked_path if checked_path is not None else proto)
    except Exception as err:  # noqa: BLE001 (third-party failures become GraphcErrors)
        raise GraphcError(f"{where}: the ONNX checker rejects this model: "
                          f"{str(err).strip().splitlines()[0] if str(err).strip() else err}") \
            from None


def default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def upgrade_opset(proto: onnx.ModelProto, where: str) -> onnx.ModelProto:
    """Models older than opset 13 are converted with onnx's version converter (after the
    rewrites it lacks, `_before_conversion`, and with old Upsample/Resize nodes' coordinates
    kept, `keep_legacy_resize`)."""
    version = default_opset(proto)
    if version >= MIN_OPSET or version == 0:
        return proto
    try:
        from onnx import version_converter

        converted = version_converter.convert_version(_before_conversion(proto), MIN_OPSET)
        return keep_legacy_resize(proto, converted)
    except Exception as err:  # noqa: BLE001 (third-party failures become GraphcErrors)
        raise GraphcError(f"{where}: cannot convert opset {version} to {MIN_OPSET}: {err}") \
            from None


def _before_conversion(proto: onnx.ModelProto) -> onnx.ModelProto:
    """What onnx's version converter gets wrong, rewritten in the old opset first.

    Before opset 13, Hardmax worked on its input flattened to 2-D at `axis` (one 1 per row of
    that matrix); the converter keeps the node as it is, which would make it per-axis. It
    becomes Flatten -> Hardmax (the last axis of the 2-D matrix) -> Reshape to the input's
    shape, which means the same in every opset."""
    nodes = list(proto.graph.node)
    if not any(n.op_type == "Hardmax" and n.domain in ("", "ai.onnx") for n in nodes):
        return proto
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    del out.graph.node[:]
    for i, node in enumerate(nodes):
        if node.op_type != "Hardmax" or node.domain not in ("", "ai.onnx"):
            out.graph.node.append(node)
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        x, y, tag = node.input[0], node.output[0], f"_graphc_hardmax{i}"
        out.graph.node.extend([
            helper.make_node("Flatten", [x], [tag + "_2d"], axis=axis),
            helper.make_node("Hardmax", [tag + "_2d"], [tag + "_h"], axis=1,
                             name=node.name),
            helper.make_node("Shape", [x], [tag + "_shape"]),
            helper.make_node("Reshape", [tag + "_h", tag + "_shape"], [y])])
    return out


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
        if domain != "ai.onnx" or not onnx_table.supported(node.op_type):
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


# --- initializers and external data ---------------------------------------------------------
def read_initializers(proto: onnx.ModelProto, base_dir: str | None,
                      where: str) -> dict[str, np.ndarray]:
    """Every initializer's value in the graphc dtype that holds it (float16 -> f32, ...)."""
    out = {}
    for t in proto.graph.initializer:
        dtype = onnx_dtype(t.data_type, f"{where}: initializer {t.name!r}")
        array = tensor_array(t, base_dir, where)
        out[t.name] = array.astype({"f32": np.float32, "f64": np.float64, "i64": np.int64,
                                    "bool": np.bool_}[dtype], copy=False)
    return out


def tensor_array(t: onnx.TensorProto, base_dir: str | None, where: str) -> np.ndarray:
    """The value of an initializer; external data is read safely from `base_dir`."""
    if t.data_location == TensorProto.EXTERNAL:
        return _external_array(t, base_dir, where)
    try:
        return np.array(numpy_helper.to_array(t))
    except Exception as err:  # noqa: BLE001 (third-party failures become GraphcErrors)
        raise GraphcError(f"{where}: initializer {t.name!r} cannot be read: {err}") from None


def _external_source(t: onnx.TensorProto, base_dir: str | None,
                     where: str) -> tuple[str, int, int]:
    """(file, offset, bytes) of an initializer's external data, after checking that the file is
    inside `base_dir` and holds exactly the bytes the tensor's shape needs."""
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    label = f"{where}: initializer {t.name!r} (external data {location!r})"
    if base_dir is None:
        raise GraphcError(f"{label}: external data needs the model loaded from its path")
    if not location or os.path.isabs(location) or ".." in location.replace("\\", "/").split("/"):
        raise GraphcError(f"{label}: external data must be a relative path inside the model's "
                          f"directory (absolute paths and '..' are rejected)")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, path]) != root or not os.path.isfile(path):
        raise GraphcError(f"{label}: not a file inside the model's directory")
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        raise GraphcError(f"{label}: unknown element type {t.data_type}") from None
    need = int(np.prod(tuple(t.dims), dtype=np.int64)) * itemsize
    try:
        offset, length = int(info.get("offset", 0)), int(info.get("length", need))
    except ValueError:
        raise GraphcError(f"{label}: offset and length must be integers") from None
    if offset < 0 or length != need:
        raise GraphcError(f"{label}: length {length} does not match the {need} bytes of a "
                          f"tensor of shape {list(t.dims)}")
    if offset + need > os.path.getsize(path):
        raise GraphcError(f"{label}: the file holds fewer than offset {offset} + {need} bytes")
    return path, offset, need


def _external_array(t: onnx.TensorProto, base_dir: str | None, where: str) -> np.ndarray:
    path, offset, need = _external_source(t, base_dir, where)
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(need)
    dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
    return np.frombuffer(data, dtype=dtype).reshape(tuple(t.dims)).copy()


# --- the walk over nodes ----------------------------------------------------------------------
class _Importer:
    """Builds the graph: `env` maps ONNX value names to Tensors or (folded) NumPy arrays."""

    def __init__(self, proto: onnx.ModelProto, file_name: str,
                 input_shapes: dict[str, tuple[int, ...]], values: dict[str, np.ndarray],
                 roles: dict[str, Role]):
        self.proto, self.file_name = proto, file_name
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
            attrs = {a.name: _attribute(a) for a in node.attribute}
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


def _attribute(a: onnx.AttributeProto) -> Any:
    value = helper.get_attribute_value(a)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8") for v in value]
    if isinstance(value, (onnx.GraphProto, onnx.SparseTensorProto)):
        raise GraphcError(f"attribute {a.name!r}: graphs and sparse tensors are not supported")
    return value


def _shown(node: onnx.NodeProto) -> str:
    args = ", ".join(node.input)
    return f"{', '.join(node.output)} = {node.op_type}({args})"
