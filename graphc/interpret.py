"""The NumPy interpreter: the oracle every compiled result is checked against.

Input: a Graph and feeds {input name: array} (params/state default to the graph's initializers).
Output: {output name: array}; with `updates=True` also the new values of updated params/state.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from graphc.errors import FeedError, GraphcError, located
from graphc.ir import Graph
from graphc.ops.registry import get_op


def check_feeds(graph: Graph, feeds: Mapping[str, np.ndarray], roles=("input",)) -> dict:
    """Validate feed names, shapes and dtypes; returns {name: contiguous array}."""
    known = {i.name: i for i in graph.inputs if i.role in roles}
    extra = sorted(set(feeds) - set(graph.input_map))
    if extra:
        raise FeedError(f"unknown feed(s) {extra}; graph {graph.name!r} takes "
                        f"{sorted(known)}")
    missing = sorted(set(known) - set(feeds))
    if missing:
        raise FeedError(f"missing feed(s) {missing}; expected " +
                        ", ".join(f"{n}: {known[n].value.type}" for n in missing))
    out = {}
    for name, array in feeds.items():
        expected = graph.input_map[name].value.type
        array = np.asarray(array) if not isinstance(array, np.ndarray) else array
        if array.shape != expected.shape or array.dtype != expected.np_dtype:
            got = f"{array.dtype}{list(array.shape)}"
            raise FeedError(f"feed {name!r}: expected {expected} ({expected.np_dtype}), got {got}")
        out[name] = array if array.flags.c_contiguous else np.array(array, order="C")
    return out


def interpret(graph: Graph, feeds: Mapping[str, np.ndarray], updates: bool = False) -> dict:
    """Run `graph` with NumPy references; returns its outputs (and updates if asked)."""
    env: dict = {i.value: graph.initializers[i.name] for i in graph.inputs
                 if i.role != "input" and i.name in graph.initializers}
    given = check_feeds(graph, feeds)
    for name, array in given.items():
        env[graph.input_map[name].value] = array
    missing = [i.name for i in graph.inputs if i.value not in env]
    if missing:
        raise FeedError(f"no value for {missing} (params need initializers or feeds)")
    for node in graph.nodes:
        op = get_op(node.op)
        args = [env[v] for v in node.inputs]
        try:
            if op.check_inputs:
                op.check_inputs([v.type for v in node.inputs], args, **node.attrs)
            result = op.reference(*args, **node.attrs)
        except GraphcError as err:
            raise type(err)(located(str(err), node.loc)) from None
        results = result if isinstance(result, tuple) else (result,)
        for v, r in zip(node.outputs, results):
            r = np.asarray(r)
            if r.dtype != v.type.np_dtype:
                r = r.astype(v.type.np_dtype)
            env[v] = r.reshape(v.type.shape)
    out = {k: np.array(env[v]) for k, v in graph.outputs.items()}
    if updates:
        out.update({f"update:{k}": np.array(env[v]) for k, v in graph.updates.items()})
    return out
