"""`graphc bench`: graphc's training step timed side by side with other frameworks.

Input: the parsed `bench` arguments. Output: the table (and with `--json` the JSON file) that
models/bench/harness.py makes.
"""
from __future__ import annotations

import argparse


def cmd_bench(args: argparse.Namespace) -> int:
    """Time graphc's training step side by side with other frameworks (models/bench/harness.py)."""
    from graphc.models.bench import harness as bench

    return bench.main(args.model, args.vs, args.threads, args.batch, args.rounds,
                      args.round_time, args.json)


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="time a training step against NumPy, PyTorch, JAX")
    bench.add_argument("model", nargs="?", default="mlp-medium", metavar="MODEL",
                       help="mlp-tiny, mlp-medium (default), mlp-large, lenet or encoder")
    bench.add_argument("--vs", default="numpy,torch,jax",
                       help="frameworks to compare with (default: numpy,torch,jax; the ones "
                            "not installed are listed as such)")
    bench.add_argument("--threads", type=int, default=1, help="threads per framework (1)")
    bench.add_argument("--batch", type=int, default=None, help="batch size (model's default)")
    bench.add_argument("--rounds", type=int, default=10, help="interleaved rounds (10)")
    bench.add_argument("--round-time", type=float, default=0.25, metavar="SECONDS",
                       help="about how long one framework's round lasts (0.25)")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.set_defaults(func=cmd_bench)
