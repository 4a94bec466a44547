"""Exporting graphs to ONNX: `save_onnx(graph, path)` and `to_onnx(graph) -> ModelProto`.

Input: any graphc Graph: a forward graph, a gradient graph or a whole training step (forward,
backward and optimizer update), before or after decomposition; fused nodes are written as their
bodies, and composite ops without an ONNX counterpart as their decompositions (conv, pools and
the window ops of their gradients: onnx_export_conv.py). Output: an ONNX model (opset 20) that
`onnx.checker` accepts, using standard ONNX ops:

- `input` graph inputs become ONNX graph inputs; params and state become initializers holding
  their initial values (zeros where the graph has none), under their graphc names;
- every graph output becomes an ONNX output of the same name;
- every in-place update of a param or state (`graph.updates`, e.g. the new weights of a training
  step) becomes an extra output named `update:<name>` (e.g. `update:fc1.weight`), so running the
  exported step once gives the updated parameters to feed back as initializers;
- the role of each initializer is kept in the model's metadata (`graphc.roles`, JSON);
- dropout's random mask is graphc's own counter-based hash written in uint64 ONNX ops, so an
  exported training step drops exactly the elements graphc drops.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphc.builder import GraphBuilder
from graphc.errors import GraphcError
from graphc.ir import Graph, Node
from graphc.onnx import export_conv
from graphc.onnx.dtypes import ONNX_DTYPES
from graphc.ops.norm import GOLDEN, MIX1, MIX2, SEED_MIX
from graphc.ops.registry import get_op

OPSET = 20


class _Writer:
    """Collects ONNX nodes; `emit` adds one, `const` adds a Constant and returns its name."""

    def __init__(self, taken: set[str]):
        self.nodes: list[onnx.NodeProto] = []
        self.taken = set(taken)
        self.counter = 0
        self.loc = ""
        self.memo: dict = {}  # nodes rules share, e.g. one MaxPool for Y and Indices

    def fresh(self, hint: str) -> str:
        while True:
            self.counter += 1
            name = f"{hint}_{self.counter}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def emit(self, op_type: str, inputs: list[str], outputs: list[str] | None = None,
             **attrs) -> str:
        outputs = outputs or [self.fresh(op_type.lower())]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.fresh(op_type),
                                           doc_string=self.loc, **attrs))
        return outputs[0]

    def const(self, array, dtype=None, out: str | None = None) -> str:
        array = np.asarray(array, dtype=dtype)
        return self.emit("Constant", [], [out] if out else None,
                         value=numpy_helper.from_array(array))


def _ints(xs) -> np.ndarray:
    return np.asarray(list(xs), np.int64).reshape(-1)


# --- export rules: a record's `onnx` op, or write_<op>(writer, node, input names, output names)
Rule = Callable[[_Writer, Node, list, list], None]


def one_to_one(w: _Writer, node: Node, ins: list, outs: list) -> None:
    """The ONNX op the record names, with the node's attributes (bools as ints, None left out)."""
    attrs = {k: int(v) if isinstance(v, bool) else v for k, v in node.attrs.items()
             if v is not None}
    w.emit(get_op(node.op).onnx, ins, outs, **attrs)


def _reduce(op_type: str) -> Rule:
    def rule(w, node, ins, outs):
        axes = node.attrs["axes"]
        if not axes:
            w.emit("Identity", ins, outs)
            return
        w.emit(op_type, [ins[0], w.const(_ints(axes))], outs, keepdims=int(node.attrs["keepdims"]))
    return rule


def write_cast(w, node, ins, outs):
    w.emit("Cast", ins, outs, to=ONNX_DTYPES[node.attrs["to"]])


def write_constant(w, node, ins, outs):
    ref = get_op(node.op).reference(**node.attrs)
    w.const(np.asarray(ref, node.output.type.np_dtype), out=outs[0])


def write_reshape(w, node, ins, outs):
    w.emit("Reshape", [ins[0], w.const(_ints(node.attrs["shape"]))], outs, allowzero=1)


def write_broadcast_to(w, node, ins, outs):
    w.emit("Expand", [ins[0], w.const(_ints(node.attrs["shape"]))], outs)


def write_not_equal(w, node, ins, outs):
    w.emit("Not", [w.emit("Equal", ins)], outs)


def write_clip(w, node, ins, outs):
    w.emit("Min", [w.emit("Max", ins[:2]), ins[2]], outs)


def write_slice(w, node, ins, outs):
    a = node.attrs
    axes = a["axes"] if a["axes"] is not None else range(len(a["starts"]))
    steps = a["steps"] if a["steps"] is not None else [1] * len(a["starts"])
    w.emit("Slice", [ins[0], w.const(_ints(a["starts"])), w.const(_ints(a["ends"])),
                     w.const(_ints(axes)), w.const(_ints(steps))], outs)


def write_pad(w, node, ins, outs):
    a = node.attrs
    value = w.const(np.asarray(a["value"], node.inputs[0].type.np_dtype))
    w.emit("Pad", [ins[0], w.const(_ints(a["pads"])), value], outs, mode=a["mode"])


def write_unslice(w, node, ins, outs):
    """Zeros with g at start + i * step: ScatterND of g into zeros at constant indices."""
    a, g = node.attrs, node.inputs[0].type
    grids = np.meshgrid(*[s + st * np.arange(n) for s, st, n in
                          zip(a["starts"], a["steps"], g.shape)], indexing="ij")
    index = np.stack(grids, -1).astype(np.int64) if g.shape else np.zeros((1,), np.int64)
    zeros = w.const(np.zeros(a["shape"], g.np_dtype))
    w.emit("ScatterND", [zeros, w.const(index), ins[0]], outs)


def write_softmax_cross_entropy(w, node, ins, outs):  # graphc's is ONNX's with mean reduction
    w.emit("SoftmaxCrossEntropyLoss", ins, outs, reduction="mean")


def write_mse(w, node, ins, outs):
    d = w.emit("Sub", ins)
    w.emit("ReduceMean", [w.emit("Mul", [d, d])], outs, keepdims=0)


def write_dropout_mask(w, node, ins, outs):
    """The same bits as graphc's mask (ops/norm.py's hash_uniform): splitmix64 of step * golden
    + flat index + seed * constant in wrapping uint64 arithmetic, its top 53 bits scaled to a
    uniform [0, 1) double, kept where >= ratio."""
    shape, ratio, seed = node.attrs["shape"], node.attrs["ratio"], node.attrs["seed"]

    def u64(value: int) -> str:
        return w.const(np.uint64(value % 2**64))

    def shifted_xor(z: str, k: int) -> str:
        return w.emit("BitwiseXor", [z, w.emit("BitShift", [z, u64(k)], direction="RIGHT")])

    flat = w.emit("Range", [w.const(np.int64(0)), w.const(np.int64(math.prod(shape))),
                            w.const(np.int64(1))])
    index = w.emit("Reshape", [w.emit("Cast", [flat], to=TensorProto.UINT64),
                               w.const(_ints(shape))], allowzero=1)
    step = w.emit("Cast", [ins[0]], to=TensorProto.UINT64)
    z = w.emit("Add", [w.emit("Add", [w.emit("Mul", [step, u64(GOLDEN)]), index]),
                       u64(seed * SEED_MIX)])
    z = w.emit("Mul", [shifted_xor(z, 30), u64(MIX1)])
    z = w.emit("Mul", [shifted_xor(z, 27), u64(MIX2)])
    top = w.emit("BitShift", [shifted_xor(z, 31), u64(11)], direction="RIGHT")
    uniform = w.emit("Mul", [w.emit("Cast", [top], to=TensorProto.DOUBLE),
                             w.const(np.float64(2.0 ** -53))])
    w.emit("GreaterOrEqual", [uniform, w.const(np.float64(ratio))], outs)


def write_fused(w, node, ins, outs):
    """The body's nodes; its inner values get fresh names, since fusion copies small producers
    (e.g. constants) into several bodies under one name and ONNX wants each name written once."""
    rename = dict(zip([v.name for v in node.inputs], ins)) | dict(
        zip([v.name for v in node.outputs], outs))
    for inner in node.attrs["body"].nodes:
        rename.update((v.name, w.fresh(v.name)) for v in inner.outputs if v.name not in rename)
        _write_node(w, inner, rename)


def write_layer_norm(w, node, ins, outs):
    x, scale = node.inputs[0].type, node.inputs[1].type
    axis = node.attrs["axis"] % x.rank
    if scale.shape != x.shape[axis:] or node.inputs[2].type.shape != x.shape[axis:]:
        _decomposed(w, node, ins, outs)  # ONNX wants full-shape scale and bias
        return
    w.emit("LayerNormalization", ins, outs, axis=axis, epsilon=node.attrs["epsilon"])


def _decomposition(node: Node) -> Graph:
    """The body a composite op decomposes into: inputs in0.., outputs out0.., node's loc."""
    b = GraphBuilder("decompose")
    args = [b.input(f"in{k}", v.type.shape, v.type.dtype) for k, v in enumerate(node.inputs)]
    with b.at(node.loc):
        result = get_op(node.op).decompose(*args, **node.attrs)
    results = result if isinstance(result, tuple) else (result,)
    return b.build(outputs={f"out{k}": r for k, r in enumerate(results)}, verify=False)


def _decomposed(w, node, ins, outs):
    """A composite op without an ONNX counterpart, written as its decomposition."""
    body = _decomposition(node)
    rename = {f"in{k}": name for k, name in enumerate(ins)}
    for inner in body.nodes:
        rename.update((v.name, w.fresh("d")) for v in inner.outputs)
        _write_node(w, inner, rename)
    for value, out in zip(body.outputs.values(), outs):
        w.emit("Identity", [rename[value.name]], [out])


write_sum, write_mean = _reduce("ReduceSum"), _reduce("ReduceMean")
write_max, write_min = _reduce("ReduceMax"), _reduce("ReduceMin")
write_iota = write_constant


def _rules(namespace: dict) -> dict[str, Rule]:
    """The `write_<op>` functions of a module, by op name."""
    return {name.removeprefix("write_"): fn for name, fn in namespace.items()
            if name.startswith("write_") and callable(fn)}


# ops whose ONNX form differs from their record's (or that have no `onnx` name)
RULES: dict[str, Rule] = {**_rules(globals()), **_rules(vars(export_conv))}


def rule(op_name: str) -> Rule | None:
    """How `op_name` is written: its rule, or one-to-one as its record's ONNX op, or None."""
    if op_name in RULES:
        return RULES[op_name]
    return one_to_one if get_op(op_name).onnx is not None else None


def _write_node(w: _Writer, node: Node, rename: dict[str, str] | None = None) -> None:
    """Write one node; `rename` maps graphc value names to ONNX names (default: the same)."""
    names = rename or {}
    w.loc = node.loc
    write = rule(node.op) or _decomposed
    write(w, node, [names.get(v.name, v.name) for v in node.inputs],
         [names.get(v.name, v.name) for v in node.outputs])


def _unexportable(graph: Graph) -> list[Node]:
    """Every node, inside fused bodies and decompositions too, that no rule can write."""
    bad = []
    for node in graph.nodes:
        if node.op == "fused":
            bad += _unexportable(node.attrs["body"])
        elif rule(node.op) is not None:
            continue
        elif get_op(node.op).kind == "composite" and get_op(node.op).decompose is not None:
            bad += _unexportable(_decomposition(node))
        else:
            bad.append(node)
    return bad


def _value_info(name: str, ttype) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, ONNX_DTYPES[ttype.dtype], list(ttype.shape))


def to_onnx(graph: Graph) -> onnx.ModelProto:
    """The ONNX model of `graph` (see the module docstring)."""
    bad = _unexportable(graph)
    if bad:
        listed = "\n".join(f"  {n.op} at {n.loc or '?'}" for n in bad)
        raise GraphcError(f"graph {graph.name!r}: {len(bad)} node(s) have no ONNX export "
                          f"rule:\n{listed}")
    w = _Writer(set(graph.values) | set(graph.outputs))
    for node in graph.nodes:
        _write_node(w, node)
    outputs = []
    named = list(graph.outputs.items()) + [(f"update:{k}", v) for k, v in graph.updates.items()]
    for name, value in named:
        if name != value.name:
            w.loc = "output"
            w.emit("Identity", [value.name], [name])
        outputs.append(_value_info(name, value.type))
    inits = []
    for i in graph.inputs:
        if i.role == "input":
            continue
        array = graph.initializers.get(i.name)
        if array is None:
            array = np.zeros(i.value.type.shape, i.value.type.np_dtype)
        inits.append(numpy_helper.from_array(np.asarray(array, i.value.type.np_dtype), i.name))
    proto = helper.make_graph(
        w.nodes, graph.name, [_value_info(i.name, i.value.type)
                              for i in graph.inputs_with_role("input")], outputs, inits)
    opsets = [helper.make_opsetid("", OPSET)]
    # the oldest IR version that has the opset (not the installed onnx's newest), so runtimes
    # older than that onnx load the model: onnxruntime 1.31 refuses IR 14, onnx 1.20's default
    model = helper.make_model(proto, opset_imports=opsets, producer_name="graphc",
                              ir_version=helper.find_min_ir_version_for(opsets))
    roles = {i.name: i.role for i in graph.inputs if i.role != "input"}
    helper.set_model_props(model, {"graphc.roles": json.dumps(roles)})
    return model


def save_onnx(graph: Graph, path: str | os.PathLike) -> None:
    """Write `graph` as an ONNX file that `onnx.checker` accepts."""
    model = to_onnx(graph)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # noqa: BLE001 (third-party failures become GraphcErrors)
        raise GraphcError(f"graph {graph.name!r}: the exported model fails the ONNX checker: "
                          f"{err}") from None
    onnx.save(model, os.fspath(path))
