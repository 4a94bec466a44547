"""The compile pipeline as one list, and the public compile API built on it.

Input: a Graph from the DSL, a parser or an importer. Output: compiled executables
(`compile`, `compile_value_and_grad`, `compile_train_step`), gradient graphs (`grad`) and
gradient checks (`check_grads`). This is the only core module that sees passes/ and runtime/.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TextIO

import numpy as np

from graphc import optim
from graphc.errors import GradientCheckError, GraphcError, located
from graphc.interpret import check_feeds, interpret
from graphc.ir import Graph
from graphc.ops.registry import get_op
from graphc.passes.autodiff import grad, value_and_grad
from graphc.passes.decompose import decompose
from graphc.passes.fusion import fuse, kernel_count
from graphc.passes.precision import to_float64
from graphc.passes.schedule import schedule
from graphc.passes.simplify import cse, dce, simplify
from graphc.passes.training import training_step
from graphc.verify import verify

Pass = tuple[str, Callable[[Graph], Graph]]

# The pipeline after any training/autodiff pass: optimise, decompose composites, optimise again.
PASSES: list[Pass] = [
    ("simplify", simplify),
    ("cse", cse),
    ("decompose", decompose),
    ("simplify-2", simplify),
    ("cse-2", cse),
    ("dce", dce),
    ("fuse", fuse),
    ("schedule", schedule),
]


def passes_for(train: tuple[str, object] | None = None,
               grads: tuple[str, list[str]] | None = None, fusion: bool = True) -> list[Pass]:
    """The pass list for a forward graph, a value-and-grad graph or a training step; with
    `fusion=False` every node becomes its own kernel (the baseline fusion is measured against).
    """
    head: list[Pass] = []
    if train is not None:
        head.append(("training", partial(training_step, loss=train[0], optimizer=train[1])))
    if grads is not None:
        head.append(("autodiff", partial(value_and_grad, output=grads[0], wrt=grads[1])))
    tail = PASSES if fusion else [(n, partial(fuse, enabled=False) if n == "fuse" else f)
                                  for n, f in PASSES]
    return head + tail


def pass_names() -> list[str]:
    return ["training", "autodiff"] + [name for name, _ in PASSES]


def run_pipeline(graph: Graph, passes: list[Pass] | None = None, *,
                 print_after: str | None = None, stop_after: str | None = None,
                 verify_each: bool = False, out: TextIO | None = None,
                 timings: dict | None = None) -> Graph:
    """Run `passes` in order; `print_after` is a pass name or "all"; the verifier runs between
    passes when `verify_each` (as under test)."""
    passes = PASSES if passes is None else passes
    names = [n for n, _ in passes]
    for flag in (print_after, stop_after):
        if flag not in (None, "all") and flag not in names:
            raise GraphcError(f"unknown pass {flag!r}; passes are {', '.join(names)}")
    verify(graph)
    for name, fn in passes:
        start = time.perf_counter()
        if name == "fuse" and timings is not None:
            timings["kernels_unfused"] = kernel_count(graph)
        graph = fn(graph)
        if timings is not None:
            timings[f"{name}_seconds"] = time.perf_counter() - start
        if verify_each:
            verify(graph)
        if print_after in ("all", name):
            (out or sys.stdout).write(f"// ----- after {name} -----\n{graph.to_text()}")
        if stop_after == name:
            break
    return graph


def _feed_checks(graph: Graph) -> list[Callable[[Mapping[str, np.ndarray]], None]]:
    """Run-time data checks (`OpDef.check_inputs`) of nodes that read graph inputs directly.

    They are taken from the graph before decomposition, which removes the composite ops that
    own them (e.g. label ranges of softmax_cross_entropy)."""
    checks = []
    for node in graph.nodes:
        op = get_op(node.op)
        fed = {i: v.name for i, v in enumerate(node.inputs)
               if v.name in graph.input_map and graph.input_map[v.name].role == "input"}
        if op.check_inputs is None or not fed:
            continue

        def check(feeds, op=op, node=node, fed=fed):
            arrays = [feeds.get(fed[i]) if i in fed else None for i in range(len(node.inputs))]
            try:
                op.check_inputs([v.type for v in node.inputs], arrays, **node.attrs)
            except GraphcError as err:
                raise type(err)(located(str(err), node.loc)) from None
        checks.append(check)
    return checks


class Executable:
    """A compiled graph: `run(feeds) -> {output: array}`; also `params`, `stats`, `llvm_ir`,
    `asm` from the native module underneath."""

    def __init__(self, graph: Graph, passes: list[Pass]):
        from graphc.runtime import compile_graph

        timings: dict = {}
        start = time.perf_counter()
        self.graph = run_pipeline(graph, passes, timings=timings)
        timings["passes_seconds"] = time.perf_counter() - start
        self.native = compile_graph(self.graph)
        self.native.stats.update(timings)
        self.native.stats["nodes_before_passes"] = len(graph.nodes)
        self._checks = _feed_checks(graph)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self._checks:
            return self.native.run(feeds)
        # data checks need validated arrays: names, shapes, dtypes first
        exact = self.native.exact_feeds(feeds)
        if exact is None:
            feeds = check_feeds(self.native.graph, feeds)
        for check in self._checks:
            check(feeds)
        return self.native.run(feeds, exact)

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.native.params

    @property
    def stats(self) -> dict:
        return self.native.stats

    @property
    def llvm_ir(self) -> str:
        return self.native.llvm_ir

    @property
    def asm(self) -> str:
        return self.native.asm


def set_num_threads(n: int | None) -> None:
    """Threads that graphs compiled from now on may use (None: GRAPHC_NUM_THREADS, else every
    core). Only kernels big enough to gain are split."""
    from graphc.runtime import set_num_threads as runtime_set

    runtime_set(n)


def _compile_graph(graph: Graph, passes: list[Pass]) -> Executable:
    return Executable(graph, passes)


def compile(graph: Graph) -> Executable:
    """Compile a forward graph; `exe.run(feeds) -> {output: array}`."""
    return _compile_graph(graph, passes_for())


class ValueAndGrad:
    """A compiled value-and-gradient function: `run(feeds) -> (value, {wrt: gradient})`."""

    def __init__(self, graph: Graph, output: str, wrt: list[str]):
        self.output, self.wrt = output, list(wrt)
        self.exe = _compile_graph(graph, passes_for(grads=(output, self.wrt)))
        self.stats = self.exe.stats

    def run(self, feeds: Mapping[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        out = self.exe.run(feeds)
        value = out[self.output]
        return (float(value) if value.shape == () else value,
                {w: out[f"grad:{w}"] for w in self.wrt})


def compile_value_and_grad(graph: Graph, output: str, wrt: list[str]) -> ValueAndGrad:
    return ValueAndGrad(graph, output, wrt)


class TrainStep:
    """A compiled training step: forward, loss, backward and optimizer update in one call."""

    def __init__(self, graph: Graph, loss: str, optimizer):
        self.loss, self.optimizer = loss, optimizer
        self.exe = _compile_graph(graph, passes_for(train=(loss, optimizer)))
        self.stats = self.exe.stats
        self._param_names = [i.name for i in graph.inputs_with_role("param")]

    def run(self, feeds: Mapping[str, np.ndarray]) -> float:
        """One step; returns the loss before the update."""
        return float(self.exe.run(feeds)[self.loss])

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {k: self.exe.params[k] for k in self._param_names}

    @property
    def state(self) -> dict[str, np.ndarray]:
        """Params and optimizer state: every persistent buffer the step updates."""
        return dict(self.exe.params)

    def save(self, path: str) -> None:
        """Write params and optimizer state atomically (temp file + rename)."""
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **self.exe.params)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load(self, path: str) -> None:
        """Restore params and optimizer state saved by `save` (names and types must match)."""
        try:
            with np.load(path) as data:
                saved = {k: data[k] for k in data.files}
        except (OSError, ValueError) as err:
            raise GraphcError(f"cannot load training state from {path!r}: {err}") from None
        mine = self.exe.params
        if set(saved) != set(mine):
            raise GraphcError(f"{path!r} holds {sorted(saved)}, this step has {sorted(mine)}")
        for name, array in saved.items():
            if array.shape != mine[name].shape or array.dtype != mine[name].dtype:
                raise GraphcError(f"{path!r}: {name} is {array.dtype}{list(array.shape)}, "
                                  f"expected {mine[name].dtype}{list(mine[name].shape)}")
        for name, array in saved.items():
            mine[name][...] = array


def compile_train_step(graph: Graph, loss: str, optimizer=None) -> TrainStep:
    return TrainStep(graph, loss, optimizer or optim.SGD(lr=0.1))


GRAD_CHECK_FLOOR = 1e-3


def check_grads(graph: Graph, output: str, wrt: list[str], feeds: Mapping[str, np.ndarray],
                tol: float = 1e-6, eps: float = 1e-6) -> float:
    """Compare autodiff with central differences, both in float64 on the interpreter.

    Returns the max over `wrt` of ||analytic - numeric|| / max(||analytic|| + ||numeric||,
    1e-3): the floor keeps gradients that are zero up to rounding (e.g. of sum(softmax(x)))
    from counting as large relative errors. Raises GradientCheckError past `tol`. A non-scalar
    output is checked as its sum.
    """
    g64 = to_float64(graph)
    feeds64 = {k: np.asarray(v, np.float64) if np.asarray(v).dtype == np.float32 else
               np.asarray(v) for k, v in feeds.items()}
    base = {**{k: np.array(v) for k, v in g64.initializers.items()}, **feeds64}
    analytic = interpret(grad(g64, output, wrt), base)

    def f(env):
        return float(np.sum(interpret(g64, env)[output]))

    worst, report = 0.0, []
    for name in wrt:
        x = base[name] = np.array(base[name], dtype=np.float64)
        numeric = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            saved = x[i]
            x[i] = saved + eps
            up = f(base)
            x[i] = saved - eps
            down = f(base)
            x[i] = saved
            numeric[i] = (up - down) / (2 * eps)
        a = analytic[name]
        scale = max(np.linalg.norm(a) + np.linalg.norm(numeric), GRAD_CHECK_FLOOR)
        err = float(np.linalg.norm(a - numeric) / scale)
        worst = max(worst, err)
        report.append(f"  {name}: relative error {err:.3g}")
    if not np.isfinite(worst) or worst > tol:
        raise GradientCheckError(f"gradient check of {output!r} failed (tol {tol:g}):\n" +
                                 "\n".join(report))
    return worst
