"""Fusion: group a primitive graph into kernels, each a `fused` node with a body graph.

Input: a decomposed Graph (elementwise, reduction, matmul, movement and source ops).
Output: an equivalent Graph whose nodes are source nodes (constants, precomputed) and `fused`
nodes, one per kernel. A kernel is one of
  - loop:   elementwise/movement ops over one output shape (its domain), one loop nest;
  - reduce: reductions over the same axes of one domain, with their elementwise producers,
            the elementwise consumers at the full domain (softmax's e / sum) and at the reduced
            shape (log of a sum, a bias update), evaluated row by row (a movement op of a
            value it computes joins only as a reshape: a transpose would read other rows);
  - matmul: one matmul with its elementwise epilogue (bias, activation, backward mask,
            optimizer update) applied in the matmul's output loop (only the current element of
            the product exists there, so no movement op of it may join).
Movement ops reading a kernel's inputs fold into it as strided reads. A value crosses a kernel
boundary (gets a buffer) only if a node outside its kernel, an output or an update reads it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from graphc.ir import Graph, GraphInput, Node, Value
from graphc.ops.linalg import contiguous_strides
from graphc.ops.registry import get_op

POINTWISE = ("elementwise", "movement")
PREFERENCE = ("matmul", "reduce", "loop")  # a pointwise consumer joins the heaviest kernel


# ops one kernel may hold: LLVM's optimiser is superlinear in a function's size, so a chain of
# thousands of elementwise ops is cut into kernels of this many (a chain of 4000 nodes compiled
# in 5.8 s as one kernel, in 2.4 s as ten)
MAX_KERNEL_NODES = 256


@dataclass(eq=False)
class Group:
    """A kernel being formed: `domain` is the iteration shape, `axes` the reduced axes."""

    kind: str
    domain: tuple[int, ...]
    axes: tuple[int, ...] = ()
    nodes: list[Node] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return math.prod(d for i, d in enumerate(self.domain) if i not in self.axes)

    def accepts_shape(self, shape: tuple[int, ...]) -> bool:
        """May a pointwise node with this output shape join (without changing the domain)?"""
        if shape == self.domain:
            return True
        return self.kind == "reduce" and math.prod(shape) == self.rows


def keeps_flat_order(node: Node) -> bool:
    """Is a movement node a reshape: each output element read at its own flat offset?"""
    op, x = get_op(node.op), node.inputs[0]
    return (op.view is not None and op.index_map is None and x.type.size == node.output.type.size
            and tuple(op.view(x.type, node.output.type, **node.attrs))
            == contiguous_strides(node.output.type.shape))


def may_join(node: Node, group: Group) -> bool:
    """A movement node may read a value computed in a matmul kernel never (only the current
    element of C exists there), in a reduce kernel only as a reshape (a transpose of a
    softmax would read other rows, which a row-by-row kernel has not computed yet; alone it
    folds into its consumer as a strided read)."""
    if get_op(node.op).kind != "movement":
        return True
    return group.kind == "loop" or (group.kind == "reduce" and keeps_flat_order(node))


class Fuser:
    """Greedy producer-consumer grouping in topological order."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.group_of = {}
        self.groups: list[Group] = []

    @property
    def group_of(self) -> dict[Value, Group]:
        return self._group_of

    @group_of.setter
    def group_of(self, owner: dict[Value, Group]) -> None:
        self._group_of = owner
        self._producers: dict[int, list[Group]] = {}  # id(group) -> its producer groups

    def producer_groups(self, node: Node) -> list[Group]:
        seen: list[Group] = []
        for v in node.inputs:
            g = self.group_of.get(v)
            if g is not None and g not in seen:
                seen.append(g)
        return seen

    def depends_on(self, group: Group, target: Group) -> bool:
        """Does `group` read (transitively) a value produced by `target`?"""
        stack, seen = [group], set()
        while stack:
            g = stack.pop()
            if g is target:
                return True
            if id(g) in seen:
                continue
            seen.add(id(g))
            stack.extend(self.producer_groups_of_group(g))
        return False

    def producer_groups_of_group(self, group: Group) -> list[Group]:
        """The groups `group` reads from (cached until `group` or the grouping changes)."""
        cached = self._producers.get(id(group))
        if cached is None:
            cached = self._producers[id(group)] = self._find_producer_groups(group)
        return cached

    def _find_producer_groups(self, group: Group) -> list[Group]:
        inside = {v for n in group.nodes for v in n.outputs}
        out = []
        for n in group.nodes:
            for v in n.inputs:
                g = self.group_of.get(v)
                if g is not None and g is not group and v not in inside and g not in out:
                    out.append(g)
        return out

    def can_join(self, node: Node, group: Group) -> bool:
        """Joining must not create a cycle through another kernel."""
        return not any(self.depends_on(other, group) for other in self.producer_groups(node)
                       if other is not group)

    def add(self, node: Node, group: Group) -> None:
        group.nodes.append(node)
        for v in node.outputs:
            self.group_of[v] = group
        self._producers.pop(id(group), None)  # its new node's inputs may come from elsewhere

    def merge(self, group: Group, into: Group) -> None:
        """Fold an independent loop kernel into `into` (its ops go first)."""
        into.nodes[:0] = group.nodes
        for n in group.nodes:
            for v in n.outputs:
                self.group_of[v] = into
        self.groups.remove(group)
        self._producers.clear()  # whoever read `group` now reads `into`

    def new_group(self, node: Node, kind: str, domain, axes=()) -> None:
        group = Group(kind, tuple(domain), tuple(axes))
        self.groups.append(group)
        self.add(node, group)

    def visit(self, node: Node) -> None:
        kind = get_op(node.op).kind
        if kind == "source":
            return
        if kind in POINTWISE:
            shape = node.output.type.shape
            fits = [g for g in self.producer_groups(node)
                    if len(g.nodes) < MAX_KERNEL_NODES and g.accepts_shape(shape)
                    and self.can_join(node, g) and may_join(node, g)]
            if not fits:
                return self.new_group(node, "loop", shape)
            target = min(fits, key=lambda g: PREFERENCE.index(g.kind))
            for other in fits:
                if other is not target and other.kind == "loop" and other.domain == target.domain \
                        and len(other.nodes) + len(target.nodes) < MAX_KERNEL_NODES \
                        and not self.depends_on(other, target) \
                        and not self.depends_on(target, other):
                    self.merge(other, into=target)
            return self.add(node, target)
        if kind == "reduction":
            x, axes = node.inputs[0], tuple(node.attrs["axes"])
            group = self.group_of.get(x)
            if group is not None and group.domain == x.type.shape and self.can_join(node, group):
                if group.kind == "loop" and axes:
                    group.kind, group.axes = "reduce", axes
                if group.kind == "reduce" and group.axes == axes:
                    return self.add(node, group)
            return self.new_group(node, "reduce", x.type.shape, axes)
        if kind == "matmul":
            return self.new_group(node, "matmul", node.output.type.shape)
        raise ValueError(f"fusion: op {node.op} of kind {kind} must be decomposed first")

    def run(self) -> list[Group]:
        for node in self.graph.nodes:
            self.visit(node)
        return self.groups


def _absorb_movement_prologues(groups: list[Group], graph: Graph) -> list[Group]:
    """A kernel that only moves data (a transpose or reshape of an input) and feeds a single
    other kernel is folded into that kernel as a strided read."""
    users = graph.users
    owner = {v: g for g in groups for n in g.nodes for v in n.outputs}
    kept = []
    for g in groups:
        if len(g.nodes) == 1 and get_op(g.nodes[0].op).kind == "movement":
            v = g.nodes[0].output
            consumers = {id(owner[n.output]): owner[n.output] for n in users.get(v, [])}
            source = owner.get(g.nodes[0].inputs[0])
            if (len(consumers) == 1 and v not in graph.outputs.values()
                    and v not in graph.updates.values()
                    and next(iter(consumers.values())) is not source):
                (target,) = consumers.values()
                target.nodes.insert(0, g.nodes[0])
                for out in g.nodes[0].outputs:
                    owner[out] = target
                continue
        kept.append(g)
    return kept


def _sink_loop_prologues(groups: list[Group], graph: Graph) -> list[Group]:
    """A loop kernel whose every result is read by one other kernel only (e.g. a one-hot of the
    labels) is folded into that kernel: its pointwise ops are evaluated there instead of going
    through memory. Its inputs are then read directly by the consumer."""
    fuser = Fuser(graph)
    fuser.groups = groups
    changed = True
    while changed:
        changed = False
        owner = {v: g for g in groups for n in g.nodes for v in n.outputs}
        fuser.group_of = owner
        for g in groups:
            if g.kind != "loop" or any(get_op(n.op).kind not in POINTWISE for n in g.nodes):
                continue
            produced = {v for n in g.nodes for v in n.outputs}
            if produced & (set(graph.outputs.values()) | set(graph.updates.values())):
                continue
            consumers = {id(owner[u.output]): owner[u.output] for v in produced
                         for u in graph.users.get(v, []) if owner.get(u.output) is not g}
            if len(consumers) != 1:
                continue
            (target,) = consumers.values()
            if len(g.nodes) + len(target.nodes) > MAX_KERNEL_NODES or \
                    any(fuser.depends_on(p, target) for p in fuser.producer_groups_of_group(g)):
                continue
            target.nodes[:0] = g.nodes
            groups = [x for x in groups if x is not g]
            fuser.groups = groups
            changed = True
            break
    return groups


def _order(groups: list[Group]) -> list[Group]:
    """Topological order of kernels, ties broken by the position of their first node."""
    owner = {v: g for g in groups for n in g.nodes for v in n.outputs}
    deps = {id(g): {id(owner[v]) for n in g.nodes for v in n.inputs
                    if v in owner and owner[v] is not g} for g in groups}
    done: set[int] = set()
    ordered: list[Group] = []
    pending = list(groups)
    while pending:
        for i, g in enumerate(pending):
            if deps[id(g)] <= done:
                ordered.append(pending.pop(i))
                done.add(id(g))
                break
        else:
            raise RuntimeError("fusion produced a cycle between kernels")
    return ordered


def _is_scalar_constant(graph: Graph, v: Value) -> bool:
    node = graph.producers.get(v)
    return node is not None and node.op == "constant" and v.type.size == 1


def _fused_node(graph: Graph, group: Group, needed_outside: set[Value]) -> Node:
    inside = {v for n in group.nodes for v in n.outputs}
    consts = [graph.producers[v] for n in group.nodes for v in n.inputs
              if v not in inside and _is_scalar_constant(graph, v)]
    body_nodes = list(dict.fromkeys(consts)) + group.nodes
    inside |= {v for n in consts for v in n.outputs}
    operands = list(dict.fromkeys(v for n in body_nodes for v in n.inputs if v not in inside))
    outputs = [v for n in group.nodes for v in n.outputs if v in needed_outside]
    body = Graph("fused", tuple(GraphInput(v, "input") for v in operands), tuple(body_nodes),
                 {v.name: v for v in outputs})
    root = next((n for n in group.nodes if get_op(n.op).kind in ("matmul", "reduction")),
                group.nodes[-1])
    return Node("fused", tuple(operands), tuple(outputs), {"body": body, "kind": group.kind},
                root.loc)


SINGLE_KIND = {"elementwise": "loop", "movement": "loop", "reduction": "reduce",
               "matmul": "matmul"}


def _singletons(graph: Graph) -> list[Group]:
    groups = []
    for node in graph.nodes:
        kind = get_op(node.op).kind
        if kind in SINGLE_KIND:
            domain = node.inputs[0].type.shape if kind == "reduction" else node.output.type.shape
            axes = tuple(node.attrs["axes"]) if kind == "reduction" else ()
            groups.append(Group(SINGLE_KIND[kind], domain, axes, [node]))
    return groups


def fuse(graph: Graph, enabled: bool = True) -> Graph:
    """Needs a decomposed graph; guarantees every non-source node sits in exactly one `fused`
    kernel and every value read across kernels is a kernel output. With `enabled=False` each
    node becomes its own kernel (the unfused baseline)."""
    if any(n.op == "fused" for n in graph.nodes):
        return as_kernels(graph)
    if not enabled:
        groups = _singletons(graph)
    else:
        groups = _absorb_movement_prologues(Fuser(graph).run(), graph)
        groups = _order(_sink_loop_prologues(groups, graph))
    owner = {v: g for g in groups for n in g.nodes for v in n.outputs}
    needed = set(graph.outputs.values()) | set(graph.updates.values())
    for g in groups:
        for n in g.nodes:
            needed.update(v for v in n.inputs if v in owner and owner[v] is not g)
    sources = [n for n in graph.nodes if get_op(n.op).kind == "source"]
    used = {v for g in groups for n in g.nodes for v in n.inputs} | needed
    sources = [n for n in sources if any(v in used for v in n.outputs)]
    kernels = [_fused_node(graph, g, needed) for g in groups
               if any(v in needed for n in g.nodes for v in n.outputs)]
    # scalar constants copied into kernel bodies may no longer be read at the top level
    top_reads = {v for k in kernels for v in k.inputs} | needed
    sources = [n for n in sources if any(v in top_reads for v in n.outputs)]
    return graph.replace(nodes=tuple(sources + kernels))


def kernel_count(graph: Graph) -> int:
    """Kernels a graph lowers to: fused nodes, or every non-source node if unfused."""
    return sum(1 for n in graph.nodes if get_op(n.op).kind != "source")


def as_kernels(graph: Graph) -> Graph:
    """Wrap every primitive node that is not yet in a kernel into a kernel of its own."""
    needed = set(graph.outputs.values()) | set(graph.updates.values()) | \
        {v for n in graph.nodes for v in n.inputs}
    nodes = []
    for node in graph.nodes:
        kind = get_op(node.op).kind
        if kind not in SINGLE_KIND:
            nodes.append(node)
            continue
        if any(v in needed for v in node.outputs):  # a dead node needs no kernel
            (group,) = _singletons(graph.replace(nodes=(node,)))
            nodes.append(_fused_node(graph, group, needed))
    return graph.replace(nodes=tuple(nodes))
