"""What an ONNX model's initializers are to a trainer: parameters, state or constants.

Input: an ONNX ModelProto, its initializers' values, and the user's `trainable` / `frozen`
choices (None, a list of names, or a callable name -> bool). Output: `classify(...)` ->
{initializer name: Role(kind, reason)}, kind one of
  param     trained by the optimizer;
  state     kept between steps but never trained: BatchNormalization running statistics
            (fixed in eval-mode nodes, updated with the op's momentum in training-mode ones);
  constant  folded into the graph: integer and bool tensors, tensors holding inf/nan (masks),
            0-d scalars, tensors used only as shapes/axes/pads, exporter-made constants, and
            whatever `frozen` names or `trainable` leaves out.
The default (trainable=None) trains what the exporter marks as model parameters. torch's
exporters (producer "pytorch") name parameters and buffers by their module path
(`encoder.layer.0.attention.self.query.weight`) and the constants they make by generated names
(`onnx::Mul_45`, `val_12`, `where`, `_tensor_constant0`). But the legacy exporter also folds
parameters into generated names (a Linear's transposed weight becomes `onnx::MatMul_12`, a
Conv fused with its BatchNormalization `onnx::Conv_7`). So for torch exports a parameter is a
module path that is not a well-known buffer (`inv_freq`, `position_ids`), or any tensor used as
the weight operand of a parametric op (WEIGHT_OPERANDS); the rest are constants. For other
producers (skl2onnx, hand-built models) every float tensor used as data is a parameter.
`describe(...)` prints the classification with the reasons.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from graphc.errors import GraphcError
from graphc.types import FLOAT_DTYPES, dtype_name

# op type -> {operand position: output position holding that operand's new value}: operands that
# are state (never trained); the update applies when the node runs in training mode
STATE_OPERANDS = {"BatchNormalization": {3: 1, 4: 2}}
# op type -> the operand positions that hold weights (what a trainer of that op trains)
WEIGHT_OPERANDS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (0, 1, 2), "MatMul": (0, 1),
                   "BatchNormalization": (1, 2), "LayerNormalization": (1, 2),
                   "InstanceNormalization": (1, 2), "GroupNormalization": (1, 2),
                   "RMSNormalization": (1,), "PRelu": (1,), "LSTM": (1, 2, 3, 7),
                   "GRU": (1, 2, 3), "RNN": (1, 2, 3)}
# last parts of module paths that torch models hold as buffers, not parameters
TORCH_BUFFERS = {"inv_freq", "position_ids", "token_type_ids", "running_mean", "running_var",
                 "num_batches_tracked"}
# a module path: dotted identifiers or indices, at least one dot
_MODULE_PATH = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+")

Choice = None | Iterable[str] | Callable[[str], bool]


@dataclass(frozen=True)
class Role:
    kind: str  # "param", "state" or "constant"
    reason: str


def _chooser(choice: Choice, keyword: str, names: set[str], where: str):
    """`choice` as a predicate on names; a list naming no initializer is an error (a typo)."""
    if choice is None:
        return None
    if callable(choice):
        return lambda name: bool(choice(name))
    if isinstance(choice, str):
        raise GraphcError(f"{where}: {keyword}= takes a list of initializer names or a "
                          f"callable, not the string {choice!r}")
    chosen = set(choice)
    unknown = sorted(chosen - names)
    if unknown:
        raise GraphcError(f"{where}: {keyword}= names {unknown}, which are not initializers "
                          f"of the model (it has {len(names)}: {sorted(names)[:12]}"
                          f"{' ...' if len(names) > 12 else ''})")
    return chosen.__contains__


def _uses(graph: onnx.GraphProto) -> dict[str, list[tuple[str, int]]]:
    """initializer name -> every (op type, operand position) reading it."""
    out: dict[str, list[tuple[str, int]]] = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name:
                out.setdefault(name, []).append((node.op_type, k))
    return out


def untie_copies(proto: onnx.ModelProto, values: dict[str, np.ndarray]
                 ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """`Identity` nodes that copy an initializer become initializers of their own.

    torch's legacy exporter stores equal tensors once and makes the others Identity copies: a
    BatchNormalization's running variance (all ones) becomes `Identity(its weight)`. Read as
    one tensor, training would send the weight gradients through the statistics; as copies,
    each is classified by its own uses, as torch means them."""
    nodes = list(proto.graph.node)
    copies = {i for i, n in enumerate(nodes) if n.op_type == "Identity" and len(n.input) == 1
              and n.input[0] in values and n.output[0] not in values}
    if not copies:
        return proto, values
    values = {**values, **{nodes[i].output[0]: values[nodes[i].input[0]].copy()
                           for i in sorted(copies)}}
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    del out.graph.node[:]
    out.graph.node.extend(n for i, n in enumerate(nodes) if i not in copies)
    return out, values


def classify(proto: onnx.ModelProto, values: Mapping[str, np.ndarray], where: str,
             trainable: Choice = None, frozen: Choice = None,
             static: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, Role]:
    """Each initializer's Role (see the module docstring). `static` maps op types to the operand
    positions that must be known at import time (graphc/onnx/table.py's STATIC)."""
    names = set(values)
    train = _chooser(trainable, "trainable", names, where)
    freeze = _chooser(frozen, "frozen", names, where)
    uses = _uses(proto.graph)
    static = static or {}
    torch_export = proto.producer_name == "pytorch"
    roles = {}
    for name, array in values.items():
        reads = uses.get(name, [])
        state_of = next((op for op, k in reads if k in STATE_OPERANDS.get(op, {})), None)
        weight_of = next((op for op, k in reads if k in WEIGHT_OPERANDS.get(op, ())), None)
        if dtype_name(array.dtype) not in FLOAT_DTYPES:
            role = Role("constant", f"{array.dtype} values are not trained")
        elif not np.all(np.isfinite(array)):
            role = Role("constant", "holds inf or nan (a mask)")
        elif state_of is not None:
            role = Role("state", f"{state_of} running statistics")
        elif freeze is not None and freeze(name):
            role = Role("constant", "frozen=")
        elif train is not None:
            role = Role("param", "trainable=") if train(name) else \
                Role("constant", "not chosen by trainable=")
        elif reads and all(k in static.get(op, ()) for op, k in reads):
            role = Role("constant", "used only as a shape, axes or pads operand")
        elif array.ndim == 0:
            role = Role("constant", "a 0-d scalar (exporters store literals so)")
        elif not reads:
            role = Role("constant", "read by no node")
        elif weight_of is not None:
            role = Role("param", f"a weight of {weight_of}")
        elif not torch_export:
            role = Role("param", "a float tensor the model computes with")
        elif not _MODULE_PATH.fullmatch(name):
            role = Role("constant", "made by the exporter (not a module path)")
        elif name.rsplit(".", 1)[-1] in TORCH_BUFFERS:
            role = Role("constant", "a torch buffer")
        else:
            role = Role("param", "a module's parameter")
        roles[name] = role
    return roles


def describe(roles: Mapping[str, Role], values: Mapping[str, np.ndarray]) -> str:
    """The classification as a table: counts per kind, then one line per initializer."""
    counts = {kind: [n for n, r in roles.items() if r.kind == kind]
              for kind in ("param", "state", "constant")}
    head = ", ".join(
        f"{len(ns)} {kind}{'s' if len(ns) != 1 else ''} "
        f"({sum(int(values[n].size) for n in ns):,} values)" for kind, ns in counts.items())
    width = max((len(n) for n in roles), default=0)
    rows = [f"{name:<{width}}  {role.kind:<8}  {values[name].dtype}"
            f"{list(values[name].shape)}  {role.reason}"
            for kind in counts for name in counts[kind] for role in [roles[name]]]
    return "\n".join([f"initializers: {head}", *rows])
