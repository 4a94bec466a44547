"""The ONNX op table and the driver that applies one ONNX node.

Input: an ONNX node, the model's opset, its operands (Tensors or folded NumPy arrays) and its
attributes. Output: one result per ONNX output. `importer(op_type)` is the op's function in
ops.py / nn_ops.py (named like the ONNX op, for ops whose semantics differ), or else the op-API
function of the graphc op whose record names it (`OpDef.onnx`, the one-to-one ops); an op type
with neither is unsupported. `normalize` is the one place where opset differences are turned
into the newest form; `STATIC` lists the operands that must be known at import time (shapes,
axes, pads); nodes whose operands are all constant are folded with onnx's reference evaluator.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from graphc.builder import Tensor
from graphc.errors import GraphcError
from graphc.onnx import (
    attention_ops,
    einsum_ops,
    extra_ops,
    index_ops,
    math_ops,
    nn_ops,
    norm_ops,
    ops,
    rnn_ops,
    sequence_ops,
    training_ops,
    upsample_ops,
    window_ops,
)
from graphc.ops import api as F
from graphc.ops.registry import all_ops, api_name
from graphc.types import INT_DTYPES

# the modules of ONNX ops whose semantics differ from every graphc op (one module per family)
OP_MODULES = (ops, nn_ops, norm_ops, rnn_ops, math_ops, index_ops, einsum_ops, attention_ops,
              sequence_ops, upsample_ops, extra_ops, window_ops, training_ops)
# those ops: the functions named like them (capitalised, defined in one of those modules)
FUNCTIONS = {name: fn for module in OP_MODULES for name, fn in vars(module).items()
             if name[:1].isupper() and callable(fn) and not isinstance(fn, type)
             and getattr(fn, "__module__", None) == module.__name__}

_REDUCE = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceL1",
           "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")
# operand positions that must be constant at import time
STATIC = {"Reshape": (1,), "Expand": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Tile": (1,),
          "Slice": (1, 2, 3, 4), "Split": (1,), "Pad": (1, 2, 3), "ConstantOfShape": (0,),
          "Dropout": (1, 2), "LSTM": (4,), "GRU": (4,), "RNN": (4,), "ReduceProd": (1,),
          "Range": (0, 1, 2), "Trilu": (1,), "CumSum": (1,), "OneHot": (1,), "TopK": (1,),
          "SplitToSequence": (1,), "SequenceAt": (1,), "SequenceInsert": (2,),
          "SequenceErase": (1,),
          "Resize": (1, 2, 3), "Upsample": (1,),
          "CumProd": (1,), "CenterCropPad": (1,), "Compress": (1,), "Col2Im": (1, 2),
          "AffineGrid": (1,),
          **{op: (1,) for op in _REDUCE}}
# operand positions holding indices, which graphc takes as i64 (ONNX also allows int32 etc.)
INDICES = {"Gather": (1,), "GatherElements": (1,), "GatherND": (1,), "ScatterElements": (1,),
           "ScatterND": (1,), "OneHot": (0,), "NegativeLogLikelihoodLoss": (1,),
           "SoftmaxCrossEntropyLoss": (1,)}
# operand positions read only for their element type: a constant CastLike'd to a computed
# tensor's type is still a constant (folded with a stand-in of that type)
TYPE_ONLY = {"CastLike": (1,)}
# ops evaluated by their own function even when every operand is constant
_SELF_FOLDED = ("Constant", "ConstantOfShape", "Shape", "Size", "SequenceEmpty",
                "SequenceConstruct", "SplitToSequence", "SequenceLength")
# opset from which an attribute became an operand: (attribute, operand position, opset)
_ATTRIBUTE_TO_INPUT = {**{op: ("axes", 1, 18) for op in _REDUCE}, "ReduceSum": ("axes", 1, 13),
                       "Squeeze": ("axes", 1, 13), "Unsqueeze": ("axes", 1, 13),
                       "Split": ("split", 1, 13)}


def importer(op_type: str) -> Callable[..., Any] | None:
    """The function importing `op_type`: its own one, or the op API's function of the registered
    op whose record names it; None when graphc does not support it."""
    if op_type in FUNCTIONS:
        return FUNCTIONS[op_type]
    op = next((o for o in all_ops().values() if o.onnx == op_type), None)
    name = api_name(op) if op is not None else None
    return F.op_function(name) if name is not None else None


def supported(op_type: str, domain: str = "ai.onnx") -> bool:
    """Does graphc import `op_type` of `domain` (the default domain, or ONNX's preview
    training domain for its optimizer ops)?"""
    if domain == training_ops.DOMAIN:
        return op_type in training_ops.OPS
    return domain == "ai.onnx" and op_type not in training_ops.OPS and \
        importer(op_type) is not None


def normalize(node: onnx.NodeProto, opset: int, inputs: list, attrs: dict) -> tuple[list, dict]:
    """Older opsets' forms moved to the newest: attributes that became operands become operands.

    (Opsets below 13 were already converted by onnx's version converter, which also covers
    Clip's min/max, Pad's pads and Dropout's ratio becoming operands.)"""
    op_type = node.op_type
    if op_type == "Split" and len(inputs) < 2 and "split" not in attrs and \
            "num_outputs" not in attrs:
        attrs["num_outputs"] = len(node.output)  # opset 13-17: equal parts, one per output
    if op_type in _ATTRIBUTE_TO_INPUT:
        name, position, since = _ATTRIBUTE_TO_INPUT[op_type]
        if name in attrs and opset < since:
            inputs = list(inputs) + [None] * (position + 1 - len(inputs))
            inputs[position] = np.asarray(attrs.pop(name), np.int64)
    return inputs, attrs


def normalize_static(node: onnx.NodeProto) -> tuple[int, ...]:
    """Positions of `node`'s operands that must be constant at import time."""
    return STATIC.get(node.op_type, ())


def fold(node: onnx.NodeProto, opset: int, inputs: list) -> tuple[np.ndarray, ...]:
    """Evaluate a node whose operands are all constant with onnx's reference implementation."""
    from onnx.reference import ReferenceEvaluator

    feeds = {name: x for name, x in zip(node.input, inputs) if name}
    try:
        results = ReferenceEvaluator(node, opsets={"": opset}).run(None, feeds)
    except Exception as err:  # noqa: BLE001 (third-party failures become GraphcErrors)
        raise GraphcError(f"cannot fold constant {node.op_type}: {err}") from None
    return tuple(np.asarray(r) for r in results)


def _static(x: Any, position: int, op_type: str) -> np.ndarray:
    if isinstance(x, Tensor):
        init = x.builder.initializers.get(x.name)
        if init is None:
            raise GraphcError(f"{op_type}: operand {position} must be known at import time "
                              f"(graphc shapes are static), but it is computed by the graph")
        return np.asarray(init)
    return x


def _stand_ins(inputs: list, positions: tuple[int, ...]) -> list:
    """Tensors at `positions` (read only for their type) as zero arrays of their type, when
    every other operand is constant."""
    others = [x for k, x in enumerate(inputs) if k not in positions]
    if not all(x is None or isinstance(x, np.ndarray) for x in others):
        return inputs
    return [np.zeros(x.shape, x.type.np_dtype) if k in positions and isinstance(x, Tensor)
            else x for k, x in enumerate(inputs)]


def apply(node: onnx.NodeProto, opset: int, inputs: list, attrs: dict) -> tuple:
    """Apply the op of `node`; returns one result (Tensor or array) per produced output."""
    op_type = node.op_type
    inputs, attrs = normalize(node, opset, inputs, attrs)
    inputs = _stand_ins(inputs, TYPE_ONLY.get(op_type, ()))
    if op_type not in _SELF_FOLDED and all(x is None or isinstance(x, np.ndarray)
                                           for x in inputs):
        return fold(node, opset, inputs)
    static = STATIC.get(op_type, ())
    builder = next((x.builder for x in inputs if isinstance(x, Tensor)), None)
    args = []
    for k, x in enumerate(inputs):
        if k in static and x is not None:
            x = _static(x, k, op_type)
        elif isinstance(x, np.ndarray) and builder is not None:
            x = ops.const(builder, x)
        if k in INDICES.get(op_type, ()) and isinstance(x, Tensor) and x.dtype in INT_DTYPES \
                and x.dtype != "i64":
            x = F.cast(x, "i64")
        args.append(x)
    while args and args[-1] is None:
        args.pop()
    result = importer(op_type)(*args, **attrs)
    return result if isinstance(result, tuple) else (result,)
