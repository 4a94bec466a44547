"""`graphc export`: a model or text-IR graph written as an ONNX file.

Input: the parsed `export` arguments. Output: the ONNX file of the forward graph, or with
`--train` of the training step after the pipeline's graph passes up to `--stop-after`, and a
line saying what was written.
"""
from __future__ import annotations

import argparse

import graphc as gc
from graphc.cli.common import add_optimizer_options, load_graph, loss_output, optimizer_of
from graphc.pipeline import passes_for, run_pipeline


def cmd_export(args: argparse.Namespace) -> int:
    """Write a model (or text-IR graph) as ONNX: its forward graph, or with --train its
    training step (updates as `update:NAME` outputs) after the passes up to --stop-after."""
    graph = load_graph(args.model)
    if args.train:
        train = (loss_output(graph, args.loss), optimizer_of(args))
        graph = run_pipeline(graph, passes_for(train=train), stop_after=args.stop_after)
    gc.save_onnx(graph, args.out)
    print(f"wrote {args.out} ({'training step' if args.train else 'forward graph'} of "
          f"{graph.name!r}, {len(graph.nodes)} graphc nodes)")
    return 0


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    exp = sub.add_parser("export", help="write a model or text-IR graph as an ONNX file")
    exp.add_argument("model", metavar="MODEL", help="a model name (e.g. cnn) or a text-IR file")
    exp.add_argument("out", metavar="OUT.onnx", help="where to write the ONNX model")
    exp.add_argument("--train", action="store_true",
                     help="export the training step (forward, backward, optimizer update)")
    exp.add_argument("--loss", help="output to train with --train (default: loss)")
    exp.add_argument("--stop-after", metavar="PASS", default="cse",
                     help="with --train: the last pipeline pass before export (default cse: "
                          "conv and pools stay ONNX Conv/MaxPool/AveragePool)")
    add_optimizer_options(exp)
    exp.set_defaults(func=cmd_export)
