"""The public compile API: compiled graphs, value-and-grad functions, training steps, checks.

Input: a Graph from the DSL, a parser or an importer. Output: executables that run it natively
(`compile` -> `Executable`, `compile_value_and_grad` -> `ValueAndGrad`, `compile_train_step` ->
`TrainStep`, each the whole pipeline of graphc/pipeline.py), gradient graphs (`grad`) and
gradient checks against central differences on the interpreter (`check_grads`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TextIO

import numpy as np

from graphc import optim
from graphc.checkpoint import graph_hash, load_checkpoint, save_checkpoint
from graphc.errors import GradientCheckError, GraphcError, located
from graphc.interpret import check_feeds, interpret
from graphc.ir import Graph
from graphc.ops.registry import get_op
from graphc.passes.autodiff import grad
from graphc.passes.precision import to_float64
from graphc.pipeline import Stage, passes_for, run_pipeline, to_machine_code
from graphc.runtime import set_num_threads as set_runtime_threads

__all__ = ["Executable", "TrainStep", "ValueAndGrad", "check_grads", "compile",
           "compile_train_step", "compile_value_and_grad", "grad", "set_num_threads"]


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
    `asm` from the native executable underneath.

    `passes` are the pipeline's stages (graphc/pipeline.py `passes_for`), continued to the
    machine code if they stop before it; `print_after` writes stages' artefacts to `out` as
    `--print-after` does."""

    def __init__(self, graph: Graph, passes: list[Stage], *, print_after: str | None = None,
                 out: TextIO | None = None):
        timings: dict = {}
        self.native = run_pipeline(graph, to_machine_code(passes), print_after=print_after,
                                   out=out, timings=timings)
        self.graph = self.native.graph
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
    set_runtime_threads(n)


def _compile_graph(graph: Graph, passes: list[Stage]) -> Executable:
    return Executable(graph, passes)


def compile(graph: Graph) -> Executable:
    """Compile a forward graph; `exe.run(feeds) -> {output: array}`."""
    return _compile_graph(graph, passes_for(through="jit"))


class ValueAndGrad:
    """A compiled value-and-gradient function: `run(feeds) -> (value, {wrt: gradient})`."""

    def __init__(self, graph: Graph, output: str, wrt: list[str]):
        self.output, self.wrt = output, list(wrt)
        self.exe = _compile_graph(graph, passes_for(grads=(output, self.wrt), through="jit"))
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
        self.exe = _compile_graph(graph, passes_for(train=(loss, optimizer), through="jit"))
        self.stats = self.exe.stats
        self._param_names = [i.name for i in graph.inputs_with_role("param")]
        self._graph_hash, self._name = graph_hash(graph), graph.name

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
        """Write params and optimizer state durably (graphc/checkpoint.py), bound to this
        step's graph and optimizer; a snapshot taken between steps even while other threads
        run the step."""
        with self.exe.native.lock:
            arrays = {k: v.copy() for k, v in self.exe.params.items()}
        save_checkpoint(path, arrays, {"graph": self._graph_hash, "graph_name": self._name,
                                       "loss": self.loss, "optimizer": repr(self.optimizer)})

    def load(self, path: str) -> None:
        """Restore params and optimizer state saved by `save` from the same graph (names and
        types must match too); another model's checkpoint is a GraphcError naming both."""
        saved, meta = load_checkpoint(path)
        if meta.get("graph") != self._graph_hash:
            raise GraphcError(f"checkpoint {path!r} was saved from graph "
                              f"{meta.get('graph_name')!r} (loss {meta.get('loss')!r}, "
                              f"{meta.get('optimizer')}), not from this step's graph "
                              f"{self._name!r}: its ops, shapes or params differ")
        mine = self.exe.params
        if set(saved) != set(mine):
            raise GraphcError(f"{path!r} holds {sorted(saved)}, this step has {sorted(mine)} "
                              f"(saved with {meta.get('optimizer')}, this step uses "
                              f"{self.optimizer!r})")
        for name, array in saved.items():
            if array.shape != mine[name].shape or array.dtype != mine[name].dtype:
                raise GraphcError(f"{path!r}: {name} is {array.dtype}{list(array.shape)}, "
                                  f"expected {mine[name].dtype}{list(mine[name].shape)}")
        with self.exe.native.lock:
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
