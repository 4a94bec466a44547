"""Hypothesis strategies for random valid graphs built with the DSL (the differential fuzzer's input).

Input: hypothesis draws. Output: `FuzzCase`s (a Graph, feeds for its inputs, and the names of its
float leaves) from `graphs()`: 1-3 f32 leaves (inputs or params) of small broadcast-compatible
shapes (rank 0-3, dims 1-5, size-1 dims and scalars), then random elementwise ops with
broadcasting, comparisons and `where`, fan-out (any earlier value may be reused), reductions
(sum/mean/max over random axes, keepdims or not), transpose/reshape, matmul (batched, broadcast
batch dims), softmax/log_softmax, and 1-3 outputs. Values stay tame: `exp` only sees tanh'd
values, `log`/`sqrt`/division only see `1 + x*x`, and a static bound on every value's magnitude
rescales a result (by a constant) once it could exceed `LIMIT`. `graphs(smooth=True)` draws no
op with a kink (max, relu, maximum, minimum, where), for gradient checks.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

import graphc as gc

LIMIT = 8.0       # rescale a value whose magnitude bound exceeds this
INPUT_BOUND = 4.0  # standard-normal feeds, clipped


@dataclass(frozen=True)
class FuzzCase:
    graph: gc.Graph
    feeds: dict[str, np.ndarray]   # every input (params have initializers)
    leaves: tuple[str, ...]        # input and param names, for gradient checks

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        return f"FuzzCase(feeds={sorted(self.feeds)}):\n{self.graph.to_text()}"


@dataclass
class V:
    """A pool entry: a tensor and a bound on its magnitude."""

    t: gc.Tensor
    bound: float

    @property
    def shape(self) -> tuple[int, ...]:
        return self.t.shape


def _broadcastable(*shapes) -> bool:
    try:
        np.broadcast_shapes(*shapes)
        return True
    except ValueError:
        return False


def _tame(v: V) -> V:
    """Rescale by a constant when the magnitude bound is past LIMIT (keeps f32 errors small)."""
    if v.bound <= LIMIT:
        return v
    return V(v.t * (1.0 / v.bound), 1.0)


# --- leaves -----------------------------------------------------------------------------------
@st.composite
def leaf_shapes(draw) -> list[tuple[int, ...]]:
    """1-3 shapes broadcast-compatible with a common base shape: suffixes with some dims 1."""
    base = draw(st.lists(st.integers(1, 5), min_size=0, max_size=3))
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        rank = draw(st.integers(0, len(base)))
        suffix = base[len(base) - rank:]
        shapes.append(tuple(d if draw(st.booleans()) else 1 for d in suffix)
                      if draw(st.booleans()) else tuple(suffix))
    return shapes


# --- ops: each takes (draw, pool, smooth) and returns a new V or None ------------------------
def _pick(draw, pool: list[V], want=lambda v: True) -> V | None:
    choices = [v for v in pool if want(v)]
    return draw(st.sampled_from(choices)) if choices else None


def _unary(draw, pool, smooth):
    a = _pick(draw, pool)
    ops = ["neg", "tanh", "sigmoid", "exp", "log1sq", "sqrt1sq"] + ([] if smooth else ["relu"])
    op = draw(st.sampled_from(ops))
    x, b = a.t, a.bound
    if op == "neg":
        return V(-x, b)
    if op == "tanh":
        return V(gc.tanh(x), 1.0)
    if op == "sigmoid":
        return V(gc.sigmoid(x), 1.0)
    if op == "relu":
        return V(gc.relu(x), b)
    if op == "exp":
        return V(gc.exp(gc.tanh(x)), math.e)
    if op == "log1sq":
        return V(gc.log(x * x + 1.0), math.log1p(b * b))
    return V(gc.sqrt(x * x + 1.0), b + 1.0)


def _scalar_operand(draw, a: V) -> V:
    c = draw(st.sampled_from([0.5, -1.5, 2.0, 3.0]))
    return V(a.t.builder.lift(c, like=a.t), abs(c))


def _binary(draw, pool, smooth):
    a = _pick(draw, pool)
    b = _pick(draw, pool, lambda v: _broadcastable(v.shape, a.shape))
    if draw(st.integers(0, 4)) == 0:
        b = _scalar_operand(draw, a)
    ops = ["add", "sub", "mul", "div"] + ([] if smooth else ["maximum", "minimum"])
    op = draw(st.sampled_from(ops))
    if draw(st.booleans()):
        a, b = b, a
    x, y = a.t, b.t
    if op == "add":
        return V(x + y, a.bound + b.bound)
    if op == "sub":
        return V(x - y, a.bound + b.bound)
    if op == "mul":
        return V(x * y, a.bound * b.bound)
    if op == "div":  # the denominator stays >= 1
        return V(x / (y * y + 1.0), a.bound)
    fn = gc.maximum if op == "maximum" else gc.minimum
    return V(fn(x, y), max(a.bound, b.bound))


def _select(draw, pool, smooth):
    """where(cmp(a, b), c, d) with all four broadcast together."""
    a = _pick(draw, pool)
    rest = [_pick(draw, pool, lambda v: _broadcastable(v.shape, a.shape)) for _ in range(3)]
    b, c, d = rest
    if not _broadcastable(a.shape, b.shape, c.shape, d.shape):
        c = d = a
    cmp = draw(st.sampled_from([gc.less, gc.less_equal, gc.greater, gc.greater_equal,
                                gc.equal, gc.not_equal]))
    return V(gc.where(cmp(a.t, b.t), c.t, d.t), max(c.bound, d.bound))


def _axes(draw, rank: int) -> tuple[int, ...]:
    return tuple(sorted(draw(st.sets(st.integers(0, rank - 1), max_size=rank)))) if rank else ()


def _reduce(draw, pool, smooth):
    a = _pick(draw, pool)
    op = draw(st.sampled_from(["sum", "mean"] + ([] if smooth else ["max"])))
    axes, keep = _axes(draw, len(a.shape)), draw(st.booleans())
    fn = {"sum": gc.sum, "mean": gc.mean, "max": gc.max}[op]
    count = math.prod(a.shape[i] for i in axes)
    return V(fn(a.t, axis=axes, keepdims=keep), a.bound * (count if op == "sum" else 1))


def _move(draw, pool, smooth):
    a = _pick(draw, pool)
    shape = a.shape
    if len(shape) >= 2 and draw(st.booleans()):
        perm = draw(st.permutations(range(len(shape))))
        return V(gc.transpose(a.t, perm), a.bound)
    dims = list(draw(st.permutations([d for d in shape if d != 1])))
    for _ in range(draw(st.integers(0, 3 - len(dims)))):  # new shape: dims permuted, 1s added
        dims.insert(draw(st.integers(0, len(dims))), 1)
    return V(gc.reshape(a.t, tuple(dims)), a.bound)


def _matmul(draw, pool, smooth):
    """a @ b with b from the pool (or a transposed pool value, e.g. a @ a^T)."""
    a = _pick(draw, pool, lambda v: len(v.shape) >= 2)
    if a is None:
        return None
    k = a.shape[-1]

    def batch_ok(v):
        return _broadcastable(a.shape[:-2], v.shape[:-2])
    direct = [v for v in pool if len(v.shape) >= 2 and v.shape[-2] == k and batch_ok(v)]
    flipped = [v for v in pool if len(v.shape) >= 2 and v.shape[-1] == k and batch_ok(v)]
    use_direct = direct and (not flipped or draw(st.booleans()))
    b = draw(st.sampled_from(direct if use_direct else flipped))
    y = b.t if use_direct else gc.swapaxes(b.t, -1, -2)
    return V(gc.matmul(a.t, y), a.bound * b.bound * k)


def _softmax(draw, pool, smooth):
    a = _pick(draw, pool, lambda v: len(v.shape) >= 1)
    if a is None:
        return None
    axis = draw(st.integers(-len(a.shape), len(a.shape) - 1))
    if draw(st.booleans()):
        return V(gc.softmax(a.t, axis=axis), 1.0)
    return V(gc.log_softmax(a.t, axis=axis), 2 * a.bound + math.log(a.shape[axis]) + 1)


OPS = {"unary": _unary, "binary": _binary, "select": _select, "reduce": _reduce,
       "move": _move, "matmul": _matmul, "softmax": _softmax}
SMOOTH_OPS = [k for k in OPS if k != "select"]


@st.composite
def graphs(draw, smooth: bool = False, max_ops: int = 8, reduce_to_scalar: bool = False,
           trainable: bool = False):
    """A random valid graph (see the module docstring); with `reduce_to_scalar` its only output
    is `loss`, a scalar (a weighted sum of every drawn output), for gradient checks; with
    `trainable` every leaf is a param and the graph has a `loss` (for training steps)."""
    reduce_to_scalar = reduce_to_scalar or trainable
    b = gc.GraphBuilder("fuzz")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    feeds, pool, leaves = {}, [], []
    for i, shape in enumerate(draw(leaf_shapes())):
        value = np.clip(rng.standard_normal(shape), -INPUT_BOUND, INPUT_BOUND).astype(np.float32)
        name = f"x{i}"
        if trainable or (not reduce_to_scalar and draw(st.integers(0, 3)) == 0):
            t = b.param(name, value)
        else:
            t, feeds[name] = b.input(name, shape), value
        pool.append(V(t, INPUT_BOUND))
        leaves.append(name)
    kinds = SMOOTH_OPS if smooth else list(OPS)
    for _ in range(draw(st.integers(1, max_ops))):
        v = OPS[draw(st.sampled_from(kinds))](draw, pool, smooth)
        if v is not None:
            pool.append(_tame(v))
    computed = pool[len(leaves):] or [V(pool[0].t * 1.0, pool[0].bound)]
    picks = draw(st.lists(st.integers(0, len(computed) - 1), min_size=0, max_size=2,
                          unique=True))
    outs = [computed[-1]] + [computed[i] for i in picks if i != len(computed) - 1]
    if reduce_to_scalar:
        # weighted by fixed random constants: a non-uniform upstream gradient, and no loss
        # that is constant by construction (sum of a softmax), whose gradient is only noise
        parts = [gc.sum(v.t * gc.constant(b, rng.uniform(0.5, 1.5, v.shape).astype(np.float32)))
                 for v in outs]
        total = functools.reduce(lambda x, y: x + y, parts)
        return FuzzCase(b.build({"loss": total}), feeds, tuple(leaves))
    return FuzzCase(b.build({f"y{i}": v.t for i, v in enumerate(outs)}), feeds, tuple(leaves))
