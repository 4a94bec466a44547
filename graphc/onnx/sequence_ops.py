"""ONNX sequence ops, resolved at import time: a sequence is a Python list of tensors.

Input: the operands of SplitToSequence, SequenceConstruct, SequenceAt, SequenceLength,
SequenceInsert, SequenceErase, SequenceEmpty and ConcatFromSequence (tensors, import-time
constants, or a `TensorSequence` made by one of these), with positions and split sizes known at
import time. Output: a `TensorSequence` or a tensor. graphc values are tensors, so a sequence
never reaches the graph: exporters use these ops to split a tensor and pick the parts (torch's
dynamo exporter writes `q, k, v = x.split(n, dim)` as SplitToSequence + SequenceAt), which
resolves to plain slices. A sequence as a graph input or output is refused up front.
"""
from __future__ import annotations

import numpy as np

from graphc.errors import GraphcError
from graphc.onnx.ops import Concat, Split
from graphc.ops import api as F


class TensorSequence(list):
    """An ONNX sequence value during import: its tensors, in order."""


def _sequence(value, op: str) -> TensorSequence:
    if not isinstance(value, TensorSequence):
        raise GraphcError(f"{op}: operand 0 must be a sequence made by a sequence op, got "
                          f"{type(value).__name__}")
    return value


def _position(position, length: int, op: str, inserting: bool = False) -> int:
    p = int(np.asarray(position).reshape(-1)[0])
    top = length + 1 if inserting else length
    if not -top <= p < top:
        raise GraphcError(f"{op}: position {p} is outside a sequence of length {length}")
    return p % top if top else 0


def SplitToSequence(input, split=None, axis=0, keepdims=1):
    n = input.shape[axis % input.ndim]
    if split is None:
        parts = Split(input, [1] * n, axis)
        if not keepdims:
            parts = [F.reshape(p, tuple(s for k, s in enumerate(p.shape)
                                        if k != axis % input.ndim)) for p in parts]
        return TensorSequence(parts)
    sizes = np.asarray(split).reshape(-1).astype(int).tolist()
    if np.ndim(split) == 0:  # chunks of one size, the last one smaller
        size = sizes[0]
        if size <= 0:
            raise GraphcError(f"SplitToSequence: split {size} must be positive")
        sizes = [min(size, n - i) for i in range(0, n, size)]
    if sum(sizes) != n or any(s < 0 for s in sizes):
        raise GraphcError(f"SplitToSequence: split {sizes} does not add up to axis {axis}'s "
                          f"{n}")
    return TensorSequence(Split(input, sizes, axis))


def SequenceConstruct(*inputs):
    return TensorSequence(inputs)


def SequenceEmpty(dtype=None):
    return TensorSequence()


def SequenceAt(input_sequence, position):
    seq = _sequence(input_sequence, "SequenceAt")
    return seq[_position(position, len(seq), "SequenceAt")]


def SequenceLength(input_sequence):
    return np.array(len(_sequence(input_sequence, "SequenceLength")), np.int64)


def SequenceInsert(input_sequence, tensor, position=None):
    seq = TensorSequence(_sequence(input_sequence, "SequenceInsert"))
    at = len(seq) if position is None else _position(position, len(seq), "SequenceInsert",
                                                     inserting=True)
    seq.insert(at, tensor)
    return seq


def SequenceErase(input_sequence, position=None):
    seq = TensorSequence(_sequence(input_sequence, "SequenceErase"))
    del seq[-1 if position is None else _position(position, len(seq), "SequenceErase")]
    return seq


def ConcatFromSequence(input_sequence, axis, new_axis=0):
    seq = _sequence(input_sequence, "ConcatFromSequence")
    if not seq:
        raise GraphcError("ConcatFromSequence: the sequence is empty")
    if new_axis:
        rank = seq[0].ndim + 1
        a = axis % rank
        seq = [F.reshape(t, tuple(t.shape[:a]) + (1,) + tuple(t.shape[a:])) for t in seq]
    return Concat(*seq, axis=axis)
