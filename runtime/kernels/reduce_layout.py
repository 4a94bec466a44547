"""The plan of a `reduce` kernel: its iteration space and which lowering scheme it can use.

Input: a reduce kernel's body graph (reductions over the same axes of one domain, with their
elementwise producers and consumers). Output: its `Layout` (domain, reduced and kept axes);
`row_plan`, whether the row-by-row scheme is safe (every value read within its own row) and
which full-domain values to keep in row buffers; `row_outputs`, the reduced-shape outputs that
scheme stores as each row finishes; and `reduce_scratch_bytes`, the scratch the kernel needs.
runtime/kernels/reduce.py emits the loops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from graphc.passes.fusion import keeps_flat_order

from graphc.ir import Graph, Node, Value
from graphc.ops.registry import get_op

ROW_BUFFER_BYTES = 1 << 17  # larger row buffers recompute instead (kept within L2)
UNROLLED_ROW = 32  # rows this short are unrolled (pooling windows, a 5x5 conv's taps)


@dataclass(frozen=True)
class Layout:
    """A reduce kernel's iteration space: the domain, its reduced and kept axes."""

    domain: tuple[int, ...]
    axes: tuple[int, ...]

    @property
    def kept(self) -> tuple[int, ...]:
        return tuple(d for d in range(len(self.domain)) if d not in self.axes)

    @property
    def kept_shape(self) -> tuple[int, ...]:
        return tuple(self.domain[d] for d in self.kept)

    @property
    def reduced_shape(self) -> tuple[int, ...]:
        return tuple(self.domain[d] for d in self.axes)

    @property
    def rows(self) -> int:
        return math.prod(self.kept_shape)

    @property
    def trailing(self) -> bool:
        """Are the reduced axes the innermost ones (each row contiguous)?"""
        return all(a > k for a in self.axes for k in self.kept)

    @property
    def keepdims(self) -> tuple[int, ...]:
        """The domain with each reduced axis 1 (a keepdims=True result's shape)."""
        return tuple(1 if d in self.axes else n for d, n in enumerate(self.domain))

    def merge(self, kept_idx, reduced_idx) -> tuple:
        at = dict(zip(self.kept, kept_idx)) | dict(zip(self.axes, reduced_idx))
        return tuple(at[d] for d in range(len(self.domain)))


def reductions(body: Graph) -> list[Node]:
    return [n for n in body.nodes if get_op(n.op).kind == "reduction"]


def layout(body: Graph) -> Layout:
    first = reductions(body)[0]
    return Layout(tuple(first.inputs[0].type.shape), tuple(first.attrs["axes"]))


def full_outputs(body: Graph, lay: Layout) -> list[tuple[int, Value]]:
    made_by_reduction = {r.output for r in reductions(body)}
    return [(j, v) for j, v in enumerate(body.outputs.values())
            if v.type.shape == lay.domain and v not in made_by_reduction]


def _passes(body: Graph, lay: Layout) -> list[list[Value]]:
    """The values each row pass evaluates at full-domain indices: one pass per reduction (its
    input), then the full-domain outputs."""
    return [[r.inputs[0]] for r in reductions(body)] + [[v for _, v in full_outputs(body, lay)]]


def _row_aligned(body: Graph, lay: Layout) -> bool:
    """Is every value computed from a reduction read only within its own row? Elementwise ops
    must not broadcast it along other axes: a [6] row result in a [6,6] domain (x - max(x, 1)
    without keepdims) is read at [i, j] as row j's result."""
    from_rows: set[Value] = set()
    for n in body.nodes:
        kind = get_op(n.op).kind
        if kind != "reduction" and not from_rows.intersection(n.inputs):
            continue
        out = n.output.type.shape
        aligned = (out, lay.keepdims) if out == lay.domain else (out,)
        if kind == "elementwise" and any((1,) * (len(out) - x.type.rank) + x.type.shape
                                         not in aligned for x in n.inputs if x in from_rows):
            return False
        from_rows.update(n.outputs)
    return True


def row_plan(body: Graph) -> dict[Value, int] | None:
    """For the row scheme: full-domain values to keep in row buffers -> the pass computing
    them. None when the kernel needs the whole-domain scheme (reduced axes not trailing, a
    reduction's result broadcast across rows, or a movement op reading another row of a value
    the kernel computes)."""
    lay = layout(body)
    if not lay.trailing or not _row_aligned(body, lay):
        return None
    producer = {v: n for n in body.nodes for v in n.outputs}
    made = set()  # values computed in the kernel, and views of them (operands' views are not)
    for n in body.nodes:
        if get_op(n.op).kind not in ("movement", "source") or made.intersection(n.inputs):
            made.update(n.outputs)
    computed: dict[Value, int] = {}
    keep: dict[Value, int] = {}
    for k, roots in enumerate(_passes(body, lay)):
        stack, seen = list(roots), set()
        while stack:
            v = stack.pop()
            node = producer.get(v)
            if v in seen or node is None:
                continue
            seen.add(v)
            kind = get_op(node.op).kind
            if kind == "movement" and made.intersection(node.inputs) \
                    and not keeps_flat_order(node):
                return None
            if kind not in ("elementwise", "movement") or v.type.shape != lay.domain:
                continue  # read from a reduction's result, an operand or a constant
            if kind == "elementwise" and computed.get(v, k) < k:
                keep[v] = computed[v]
                continue
            computed.setdefault(v, k)
            stack.extend(node.inputs)
    row_len = math.prod(lay.reduced_shape)
    if row_len <= UNROLLED_ROW or \
            sum(row_len * v.type.np_dtype.itemsize for v in keep) > ROW_BUFFER_BYTES:
        return {}  # recompute: a short row is straight-line code, values stay in registers
    return keep


def row_outputs(body: Graph) -> list[tuple[int, Value]]:
    """The outputs at the reduced shape that the row scheme stores as each row finishes:
    those computed from this row's reductions and operands only (no view of a value the
    kernel computes, which could read another row)."""
    lay = layout(body)
    producer = {v: n for n in body.nodes for v in n.outputs}
    full = {v for _, v in full_outputs(body, lay)}
    out = []
    for j, v in enumerate(body.outputs.values()):
        if v in full or v.type.shape not in (lay.kept_shape, lay.keepdims):
            continue
        stack, seen, ok = [v], set(), True
        while stack and ok:
            node = producer.get(stack.pop())
            if node is None or node in seen:
                continue
            seen.add(node)
            kind = get_op(node.op).kind
            ok = kind != "movement" or keeps_flat_order(node) or not any(
                x in producer and get_op(producer[x].op).kind != "source" for x in node.inputs)
            if kind != "reduction":
                stack.extend(node.inputs)
        if ok:
            out.append((j, v))
    return out


def reduce_scratch_bytes(body: Graph) -> int:
    """One accumulator per row for each reduction; a row buffer per kept value (64-byte
    aligned arrays)."""
    arrays = [r.output.type.nbytes for r in reductions(body)]
    row_len = math.prod(layout(body).reduced_shape)
    arrays += [row_len * v.type.np_dtype.itemsize for v in (row_plan(body) or {})]
    return sum(arrays) + 64 * len(arrays)
