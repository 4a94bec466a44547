"""The `graphc` command: `graphc train`, `compile`, `export`, `bench` and `info`.

Input: command-line arguments. Output: what the verb prints: training progress and held-out
accuracy (`train`, cli/train.py), a compiled model's graph text, memory plan, LLVM IR, assembly,
per-stage artefacts and statistics (`compile`, cli/compile.py), an ONNX file (`export`,
cli/export.py) or a side-by-side timing table against NumPy, PyTorch and JAX (`bench`,
cli/bench.py), or what a model is (`info`, cli/info.py). Every `GraphcError` ends the command with `graphc: error: <message>` on stderr
and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from graphc.cli.bench import add_bench_parser
from graphc.cli.common import make_optimizer
from graphc.cli.compile import add_compile_parser, format_report
from graphc.cli.export import add_export_parser
from graphc.cli.info import add_info_parser
from graphc.cli.train import add_train_parser
from graphc.errors import GraphcError

__all__ = ["format_report", "main", "make_optimizer", "make_parser"]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("graphc")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "(not installed)"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphc", description="Compile neural-network training steps to native code.")
    parser.add_argument("--version", action="version", version=f"graphc {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{train,compile,bench,export,info}")
    add_train_parser(sub)
    add_compile_parser(sub)
    add_bench_parser(sub)
    add_export_parser(sub)
    add_info_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `graphc` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["train", *argv]  # `graphc` alone trains the default model
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except GraphcError as err:
        print(f"graphc: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
