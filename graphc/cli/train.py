"""`graphc train`: train the built-in MLP or CNN, or an ONNX classifier, on the digits.

Input: the parsed `train` arguments. Output: progress (a tqdm bar when installed), the final
training loss, held-out loss and accuracy and the wall time; with `--save`, the params and
optimizer state in a file.
"""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import graphc as gc
from graphc.cli.common import add_optimizer_options, optimizer_of


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


def finite(loss: float, epoch: int) -> float:
    """The loss, or a GraphcError stopping the run once it is NaN or infinite (training on
    would only spread it through every parameter)."""
    if not math.isfinite(loss):
        raise gc.GraphcError(f"the training loss is {loss} in epoch {epoch}: training stopped "
                             f"(lower --lr, or look for NaN or Inf in the data)")
    return loss


def cmd_train(args: argparse.Namespace) -> int:
    """Train the MLP (or an ONNX model) on scikit-learn's digits; report held-out accuracy."""
    if args.threads is not None:
        gc.set_num_threads(args.threads)
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
            loss = finite(step.run({"x": x, "y": y}), epoch)
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
    for epoch in range(1, args.epochs + 1):
        for x, y in train.batches(shape[0], rng):
            loss = finite(step.run(feeds(x, y)), epoch)
    trained = graph.replace(initializers={**graph.initializers, **step.params})
    forward = gc.compile(trained)
    index = np.resize(np.arange(len(held)), -(-len(held) // shape[0]) * shape[0])
    predicted = np.concatenate([
        np.argmax(forward.run(feeds(held.x[i], held.y[i]))[logits], axis=-1)
        for i in index.reshape(-1, shape[0])])[:len(held)]
    print(f"final training loss: {loss:.4f}")
    print(f"held-out accuracy: {np.mean(predicted == held.y):.1%} ({len(held)} examples)")
    return 0


def add_train_parser(sub: argparse._SubParsersAction) -> None:
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
    train.add_argument("--threads", type=int, metavar="N",
                       help="threads the compiled step may use (default: GRAPHC_NUM_THREADS or "
                            "every core)")
    add_optimizer_options(train)
    train.set_defaults(func=cmd_train)
