"""What several `graphc` verbs share: the optimizer flags, loading a model or text-IR graph,
and choosing the output to train.

Input: parsed command-line arguments, a model name or a text-IR path. Output: optimizer
objects, Graphs (text IR gets zero initializers) and the name of the loss output.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import graphc as gc


def make_optimizer(name: str, lr: float | None, momentum: float, weight_decay: float):
    """The optimizer for `--optimizer`, with a default learning rate that suits it."""
    if name == "sgd":
        return gc.optim.SGD(lr=0.1 if lr is None else lr, momentum=momentum,
                            weight_decay=weight_decay)
    if name == "adam":
        return gc.optim.Adam(lr=1e-3 if lr is None else lr)
    raise gc.GraphcError(f"unknown optimizer {name!r}; use sgd or adam")


def optimizer_of(args: argparse.Namespace):
    return make_optimizer(args.optimizer, args.lr, args.momentum, args.weight_decay)


def add_optimizer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 0.1 for sgd, 0.001 for adam)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="SGD weight decay")


def load_graph(spec: str) -> gc.Graph:
    """A registered model name (see models/) or the path of a text-IR graph."""
    from graphc.models import MODELS, build_model

    if spec in MODELS:
        return build_model(spec)
    if not os.path.exists(spec):
        raise gc.GraphcError(f"{spec!r} is neither a model ({', '.join(sorted(MODELS))}) "
                             f"nor a file")
    try:
        with open(spec, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise gc.GraphcError(f"cannot read {spec}: {err}") from None
    return with_default_initializers(gc.parse(text))


def with_default_initializers(graph: gc.Graph) -> gc.Graph:
    """Text IR carries no param values; zeros stand in so the graph can be compiled."""
    missing = {i.name: np.zeros(i.value.type.shape, i.value.type.np_dtype)
               for i in graph.inputs if i.role != "input" and i.name not in graph.initializers}
    if not missing:
        return graph
    return graph.replace(initializers={**graph.initializers, **missing})


def loss_output(graph: gc.Graph, requested: str | None) -> str:
    """The output to train: `--loss`, else `loss`, else the graph's only output."""
    names = list(graph.outputs)
    if requested is None:
        requested = "loss" if "loss" in names or len(names) != 1 else names[0]
    if requested not in names:
        raise gc.GraphcError(f"graph {graph.name!r} has no output {requested!r} to train; "
                             f"its outputs are {names}")
    return requested
