"""`graphc compile`: a model or text-IR graph through the pipeline, printed as asked.

Input: the parsed `compile` arguments. Output on stdout: the compiled graph (`--emit graph`,
the default), the LLVM IR or assembly of the machine code (`--emit llvm|asm`), any stage's
artefact (`--print-after STAGE|all`: graphs, the memory plan, the lowered LLVM IR), the pipeline
cut short (`--stop-after STAGE`, its artefact printed) and the compile statistics (`--report`).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from graphc.cli.common import add_optimizer_options, load_graph, loss_output, optimizer_of
from graphc.compile import Executable
from graphc.ir import Graph
from graphc.pipeline import LAST_GRAPH_PASS, STAGE_NAMES, passes_for, run_pipeline

EMITS = ("graph", "llvm", "asm")
PRINT_ALL_THROUGH = "lower"  # the last stage with a text form (machine code is --emit asm)


def format_value(key: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f} s" if "second" in key or key.endswith("_s") else f"{value:.4g}"
    if isinstance(value, int) and "bytes" in key:
        return f"{value:,} B ({value / 2**20:.2f} MiB)"
    return f"{value:,}" if isinstance(value, int) else str(value)


def flatten(stats: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in stats.items():
        if isinstance(value, Mapping):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def format_report(stats: Mapping[str, Any]) -> str:
    """exe.stats as a two-column table (nested dicts become dotted keys)."""
    rows = [(k, format_value(k, v)) for k, v in flatten(stats)]
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def last_stage(print_after: str | None, stop_after: str | None) -> str:
    """The pipeline stage to run through for these flags (at least the last graph pass)."""
    wanted = [PRINT_ALL_THROUGH if flag == "all" else flag for flag in (print_after, stop_after)]
    return max([LAST_GRAPH_PASS, *(f for f in wanted if f in STAGE_NAMES)],
               key=STAGE_NAMES.index)


def graph_of(artefact: Any) -> Graph:
    """The graph a stage's artefact is for (a Graph is its own)."""
    return artefact if isinstance(artefact, Graph) else artefact.graph


def cmd_compile(args: argparse.Namespace) -> int:
    """Compile a model or text graph and print what was asked for."""
    graph = load_graph(args.file)
    train = (loss_output(graph, args.loss), optimizer_of(args)) if args.train else None
    emit = args.emit or (None if args.report or args.print_after else "graph")
    if not args.stop_after and (args.report or emit in ("llvm", "asm")):
        exe = Executable(graph, passes_for(train=train, through="jit"),
                         print_after=args.print_after, out=sys.stdout)
        if emit == "graph":
            sys.stdout.write(exe.graph.to_text())
        if emit in ("llvm", "asm"):
            text = exe.llvm_ir if emit == "llvm" else exe.asm
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        if args.report:
            print(format_report(exe.stats))
        return 0
    stages = passes_for(train=train, through=last_stage(args.print_after, args.stop_after))
    final = run_pipeline(graph, stages, print_after=args.print_after,
                         stop_after=args.stop_after, out=sys.stdout)
    if args.stop_after and hasattr(final, "to_text"):
        sys.stdout.write(final.to_text())
    elif emit == "graph" and not args.stop_after:
        sys.stdout.write(graph_of(final).to_text())
    return 0


def add_compile_parser(sub: argparse._SubParsersAction) -> None:
    comp = sub.add_parser("compile", help="compile a model or text-IR graph")
    comp.add_argument("file", metavar="FILE", help="a model name (e.g. mlp) or a text-IR file")
    comp.add_argument("--emit", choices=EMITS, help="print the compiled graph, LLVM IR or asm")
    comp.add_argument("--train", action="store_true", help="compile the training step")
    comp.add_argument("--loss", help="output to train with --train (default: loss)")
    comp.add_argument("--print-after", metavar="PASS|all",
                      help="print the artefact after a pipeline stage (a graph; plan: the "
                           "memory plan; lower: the LLVM IR) or after every stage")
    comp.add_argument("--stop-after", metavar="PASS", help="stop after a stage, print its artefact")
    comp.add_argument("--report", action="store_true", help="print compile statistics")
    add_optimizer_options(comp)
    comp.set_defaults(func=cmd_compile)
