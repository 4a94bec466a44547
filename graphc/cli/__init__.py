"""The `graphc` command: `graphc train`, `graphc compile` and `graphc bench`.

Input: command-line arguments. Output: training progress and held-out accuracy (`train`), or a
compiled model's graph text, LLVM IR, assembly, per-pass graphs and statistics (`compile`), or
a side-by-side timing table against NumPy, PyTorch and JAX (`bench`, see models/bench/harness.py).
Every `GraphcError` ends the command with `graphc: error: <message>` on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

import graphc as gc

EMITS = ("graph", "llvm", "asm")


# --- graphc train --------------------------------------------------------------------------
def make_optimizer(name: str, lr: float | None, momentum: float, weight_decay: float):
    """The optimizer for `--optimizer`, with a default learning rate that suits it."""
    if name == "sgd":
        return gc.optim.SGD(lr=0.1 if lr is None else lr, momentum=momentum,
                            weight_decay=weight_decay)
    if name == "adam":
        return gc.optim.Adam(lr=1e-3 if lr is None else lr)
    raise gc.GraphcError(f"unknown optimizer {name!r}; use sgd or adam")


def progress(total: int, quiet: bool):
    """A tqdm bar when tqdm is installed and output is wanted, else a silent stand-in."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is None or quiet:
        return _NoBar()
    return tqdm(total=total, unit="step", dynamic_ncols=True)


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, *args: Any, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


def build_trainable(model: str, sizes: Sequence[int], batch: int, seed: int = 0,
                    params: Mapping[str, np.ndarray] | None = None) -> gc.Graph:
    """The `--model` graph (mlp over `sizes`, or the digits cnn) for a batch size."""
    if model == "cnn":
        from graphc.models.cnn import build_cnn

        side = math.isqrt(sizes[0])
        return build_cnn(side, sizes[-1], batch=batch, seed=seed, params=params)
    from graphc.models.mlp import build_mlp

    return build_mlp(sizes, batch=batch, seed=seed, params=params)


def evaluate(sizes: Sequence[int], params: Mapping[str, np.ndarray], split,
             model: str = "mlp") -> tuple[float, float]:
    """(accuracy, mean loss) of the trained model over the whole split, as one compiled batch."""
    graph = build_trainable(model, sizes, len(split), params=dict(params))
    out = gc.compile(graph).run({"x": split.x, "y": split.y})
    accuracy = float(np.mean(np.argmax(out["logits"], axis=1) == split.y))
    return accuracy, float(out["loss"])


def cmd_train(args: argparse.Namespace) -> int:
    """Train the MLP (or an ONNX model) on scikit-learn's digits; report held-out accuracy."""
    if args.onnx is not None:
        return cmd_train_onnx(args)
    from graphc.models.datasets import load_digits

    start = time.perf_counter()
    train, held = load_digits(heldout=args.heldout, seed=args.seed)
    sizes = (train.x.shape[1], *args.hidden, int(max(train.y.max(), held.y.max())) + 1)
    graph = build_trainable(args.model, sizes, args.batch, args.seed)
    step = gc.compile_train_step(graph, loss="loss", optimizer=optimizer_of(args))
    compiled = time.perf_counter()
    shown = "-".join(map(str, sizes)) if args.model == "mlp" else args.model
    print(f"model {shown}, batch {args.batch}, {args.optimizer}; "
          f"{len(train)} training / {len(held)} held-out examples; "
          f"compiled in {compiled - start:.2f} s", flush=True)
    rng = np.random.default_rng(args.seed)
    bar = progress(args.epochs * train.steps_per_epoch(args.batch), args.quiet)
    loss = float("nan")
    for epoch in range(1, args.epochs + 1):
        for x, y in train.batches(args.batch, rng):
            loss = step.run({"x": x, "y": y})
            bar.set_postfix(epoch=epoch, loss=f"{loss:.4f}", refresh=False)
            bar.update()
    bar.close()
    trained = time.perf_counter()
    accuracy, held_loss = evaluate(sizes, step.params, held, args.model)
    if args.save:
        step.save(args.save)
    end = time.perf_counter()
    print(f"final training loss: {loss:.4f}; held-out loss: {held_loss:.4f}")
    print(f"held-out accuracy: {accuracy:.1%} ({len(held)} examples)")
    print(f"wall time: {end - start:.2f} s (compile {compiled - start:.2f} s, "
          f"train {trained - compiled:.2f} s, evaluate {end - trained:.2f} s)")
    return 0


def onnx_classifier(args: argparse.Namespace, features: int) -> tuple[gc.Graph, str, tuple]:
    """The ONNX model with `--loss` added on `--logits`; (graph, input name, input shape).
    A symbolic batch dim is bound to `--batch`; a fixed one is the batch size."""
    import onnx

    proto = onnx.load(args.onnx, load_external_data=False)
    inits = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise gc.GraphcError(f"{args.onnx}: graphc train needs a model with one input, it has "
                             f"{[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") else args.batch
    shape = (batch, *(d.dim_value for d in dims[1:]))
    if int(np.prod(shape[1:])) != features:
        raise gc.GraphcError(f"{args.onnx}: input {inputs[0].name!r} {list(shape)} does not "
                             f"hold the {features} features of a {args.data} example")
    graph = gc.load_onnx(args.onnx, {inputs[0].name: shape},
                         outputs=[args.logits] if args.logits else None)
    logits = args.logits or next(iter(graph.outputs))
    return gc.with_loss(graph, args.loss, output=logits, labels="labels"), inputs[0].name, shape


def cmd_train_onnx(args: argparse.Namespace) -> int:
    """`graphc train model.onnx --loss cross_entropy --data digits [--logits NAME]`."""
    from graphc.models.datasets import load_digits

    train, held = load_digits(heldout=args.heldout, seed=args.seed)
    graph, x_name, shape = onnx_classifier(args, train.x.shape[1])
    logits = args.logits or next(k for k in graph.outputs if k != "loss")
    classes = graph.outputs[logits].type.shape[-1]

    def feeds(x, y):
        target = y if args.loss == "cross_entropy" else np.eye(classes, dtype=np.float32)[y]
        return {x_name: x.reshape(shape), "labels": target}

    step = gc.compile_train_step(graph, loss="loss", optimizer=optimizer_of(args))
    print(f"{args.onnx}: input {x_name} {list(shape)}, {args.loss} on {logits!r}, "
          f"{args.optimizer}; {len(train)} training / {len(held)} held-out examples", flush=True)
    rng = np.random.default_rng(args.seed)
    loss = float("nan")
    for _ in range(args.epochs):
        for x, y in train.batches(shape[0], rng):
            loss = step.run(feeds(x, y))
    trained = graph.replace(initializers={**graph.initializers, **step.params})
    forward = gc.compile(trained)
    index = np.resize(np.arange(len(held)), -(-len(held) // shape[0]) * shape[0])
    predicted = np.concatenate([
        np.argmax(forward.run(feeds(held.x[i], held.y[i]))[logits], axis=-1)
        for i in index.reshape(-1, shape[0])])[:len(held)]
    print(f"final training loss: {loss:.4f}")
    print(f"held-out accuracy: {np.mean(predicted == held.y):.1%} ({len(held)} examples)")
    return 0


# --- graphc compile ------------------------------------------------------------------------
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


def run_passes(graph: gc.Graph, args: argparse.Namespace, loss: str | None) -> gc.Graph:
    """The graph after the pipeline's graph passes, printed after `--print-after` (a pass or
    `all`) and cut short at `--stop-after`."""
    from graphc import pipeline

    train = (loss, optimizer_of(args)) if args.train else None
    return pipeline.run_pipeline(graph, pipeline.passes_for(train=train),
                                 print_after=args.print_after, stop_after=args.stop_after,
                                 out=sys.stdout)


def optimizer_of(args: argparse.Namespace):
    return make_optimizer(args.optimizer, args.lr, args.momentum, args.weight_decay)


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


def cmd_compile(args: argparse.Namespace) -> int:
    """Compile a model or text graph and print what was asked for."""
    graph = load_graph(args.file)
    loss = loss_output(graph, args.loss) if args.train else None
    final = run_passes(graph, args, loss)
    emit = args.emit or (None if args.report or args.print_after else "graph")
    if args.stop_after or emit == "graph":
        sys.stdout.write(final.to_text())
    if args.stop_after or not (args.report or emit in ("llvm", "asm")):
        return 0
    if args.train:
        exe = gc.compile_train_step(graph, loss=loss, optimizer=optimizer_of(args))
    else:
        exe = gc.compile(graph)
    if emit in ("llvm", "asm"):
        text = exe.llvm_ir if emit == "llvm" else exe.asm
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if args.report:
        print(format_report(exe.stats))
    return 0


# --- graphc export ------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    """Write a model (or text-IR graph) as ONNX: its forward graph, or with --train its
    training step (updates as `update:NAME` outputs) after the passes up to --stop-after."""
    from graphc import pipeline

    graph = load_graph(args.model)
    if args.train:
        train = (loss_output(graph, args.loss), optimizer_of(args))
        graph = pipeline.run_pipeline(graph, pipeline.passes_for(train=train),
                                      stop_after=args.stop_after)
    gc.save_onnx(graph, args.out)
    print(f"wrote {args.out} ({'training step' if args.train else 'forward graph'} of "
          f"{graph.name!r}, {len(graph.nodes)} graphc nodes)")
    return 0


def add_export_parser(sub) -> None:
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


# --- graphc bench --------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    """Time graphc's training step side by side with other frameworks (models/bench/harness.py)."""
    from graphc.models.bench import harness as bench

    return bench.main(args.model, args.vs, args.threads, args.batch, args.rounds,
                      args.round_time, args.json)


def add_bench_parser(sub) -> None:
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


# --- argument parsing ----------------------------------------------------------------------
def add_optimizer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 0.1 for sgd, 0.001 for adam)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="SGD weight decay")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphc", description="Compile neural-network training steps to native code.")
    sub = parser.add_subparsers(dest="command", metavar="{train,compile,bench,export}")
    train = sub.add_parser("train", help="train an MLP on scikit-learn's 8x8 digits (default)")
    train.add_argument("onnx", nargs="?", metavar="MODEL.onnx",
                       help="train this ONNX classifier instead of the built-in MLP")
    train.add_argument("--loss", choices=("cross_entropy", "mse"), default="cross_entropy",
                       help="loss added to an ONNX model's logits (default cross_entropy)")
    train.add_argument("--logits", metavar="NAME", help="the ONNX value holding the logits "
                       "(default: the first output); only what it depends on is imported, "
                       "e.g. a scikit-learn MLP's logits before its ZipMap")
    train.add_argument("--data", choices=("digits",), default="digits")
    train.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                       help="the MLP (default) or the LeNet-style CNN of models/cnn.py")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch", type=int, default=64)
    train.add_argument("--hidden", type=int, nargs="+", default=[256], metavar="N",
                       help="hidden layer sizes (default: 256)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--heldout", type=float, default=0.2, help="held-out fraction")
    train.add_argument("--save", metavar="PATH", help="save params and optimizer state")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    add_optimizer_options(train)
    train.set_defaults(func=cmd_train)

    comp = sub.add_parser("compile", help="compile a model or text-IR graph")
    comp.add_argument("file", metavar="FILE", help="a model name (e.g. mlp) or a text-IR file")
    comp.add_argument("--emit", choices=EMITS, help="print the compiled graph, LLVM IR or asm")
    comp.add_argument("--train", action="store_true", help="compile the training step")
    comp.add_argument("--loss", help="output to train with --train (default: loss)")
    comp.add_argument("--print-after", metavar="PASS|all",
                      help="print the graph after a pipeline pass (or after every pass)")
    comp.add_argument("--stop-after", metavar="PASS", help="stop after a pass, print its graph")
    comp.add_argument("--report", action="store_true", help="print compile statistics")
    add_optimizer_options(comp)
    comp.set_defaults(func=cmd_compile)
    add_bench_parser(sub)
    add_export_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `graphc` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["train", *argv]  # `graphc` alone trains the default model
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except gc.GraphcError as err:
        print(f"graphc: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
