"""`graphc bench`: graphc's training step timed side by side with other frameworks.

Input: the parsed `bench` arguments. Output: the table (and with `--json` the JSON file) that
models/bench/harness.py makes.
"""
from __future__ import annotations

import argparse


def cmd_bench(args: argparse.Namespace) -> int:
    """Time graphc's training step side by side with other frameworks (models/bench/harness.py),
    or with `--profile` graphc's alone, kernel by kernel (models/bench/profile.py)."""
    if args.profile:
        import json

        from graphc.models.bench.profile import format_profile, profile_model

        report = profile_model(args.model, args.batch, args.steps, args.threads)
        print(format_profile(report))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(report.to_json(), f, indent=2)
        return 0
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
    bench.add_argument("--profile", action="store_true",
                       help="graphc's step alone, kernel by kernel: time, share, GFLOP/s")
    bench.add_argument("--steps", type=int, default=20, help="timed steps with --profile (20)")
    bench.set_defaults(func=cmd_bench)
