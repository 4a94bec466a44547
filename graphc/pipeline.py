"""The compile pipeline as one list of named stages, from a graph to machine code.

Input: a Graph from the DSL, a parser or an importer. Output: the artefact of the last stage
run: a Graph after every graph pass (up to `schedule`), then a `PlannedGraph` (memory plan),
`LoweredModules` (LLVM IR) and a `NativeExecutable` (machine code). `--print-after` and
`--stop-after` name any stage; the public compile API (graphc/compile.py) runs them all.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TextIO

from graphc.errors import GraphcError
from graphc.ir import Graph
from graphc.passes.autodiff import value_and_grad
from graphc.passes.decompose import decompose
from graphc.passes.fusion import fuse, kernel_count
from graphc.passes.precision import half_matmul_in_f32
from graphc.passes.schedule import schedule
from graphc.passes.simplify import cse, dce, simplify
from graphc.passes.training import training_step
from graphc.runtime.stages import jit_compile, lower_to_llvm, plan_memory
from graphc.verify import verify

Stage = tuple[str, Callable[[Any], Any]]

# After any training/autodiff pass: optimise, decompose composites, optimise again, fuse and
# schedule (Graph -> Graph, verified in between under test); then place the buffers
# (Graph -> PlannedGraph), lower (-> LoweredModules) and JIT (-> NativeExecutable).
PIPELINE: list[Stage] = [
    ("simplify", simplify),
    ("cse", cse),
    ("decompose", decompose),
    ("half-matmul", half_matmul_in_f32),
    ("simplify-2", simplify),
    ("cse-2", cse),
    ("dce", dce),
    ("fuse", fuse),
    ("schedule", schedule),
    ("plan", plan_memory),
    ("lower", lower_to_llvm),
    ("jit", jit_compile),
]
STAGE_NAMES = [name for name, _ in PIPELINE]
LAST_GRAPH_PASS = "schedule"


def passes_for(train: tuple[str, object] | None = None,
               grads: tuple[str, list[str]] | None = None, fusion: bool = True,
               through: str = LAST_GRAPH_PASS) -> list[Stage]:
    """The stages for a forward graph, a value-and-grad graph or a training step, up to and
    including `through` (by default the last graph pass: the result is still a Graph); with
    `fusion=False` every node becomes its own kernel (the baseline fusion is measured against).
    """
    if through not in STAGE_NAMES:
        raise GraphcError(f"unknown stage {through!r}; stages are {', '.join(STAGE_NAMES)}")
    head: list[Stage] = []
    if train is not None:
        head.append(("training", partial(training_step, loss=train[0], optimizer=train[1])))
    if grads is not None:
        head.append(("autodiff", partial(value_and_grad, output=grads[0], wrt=grads[1])))
    tail = PIPELINE[:STAGE_NAMES.index(through) + 1]
    if not fusion:
        tail = [(n, partial(fuse, enabled=False) if n == "fuse" else f) for n, f in tail]
    return head + tail


def to_machine_code(stages: list[Stage]) -> list[Stage]:
    """`stages` continued with the pipeline's stages after the last one they include, to `jit`."""
    last = max((STAGE_NAMES.index(n) for n, _ in stages if n in STAGE_NAMES), default=-1)
    return stages + PIPELINE[last + 1:]


def _check_flags(stages: list[Stage], *flags: str | None) -> None:
    names = [n for n, _ in stages]
    for flag in flags:
        if flag in (None, "all") or flag in names:
            continue
        if flag in STAGE_NAMES:
            raise GraphcError(f"stage {flag!r} is past the stages run here (up to {names[-1]})")
        known = names + [n for n in STAGE_NAMES if n not in names]
        raise GraphcError(f"unknown pass {flag!r}; passes are {', '.join(known)}")


def _print(name: str, artefact: Any, explicit: bool, out: TextIO) -> None:
    """Write a stage's artefact as text; `all` skips the one without a text form (machine code)."""
    if not hasattr(artefact, "to_text"):
        if explicit:
            raise GraphcError(f"the result of {name!r} is machine code, which has no text form; "
                              f"see it with --emit asm (or --print-after lower for its LLVM IR)")
        return
    text = artefact.to_text()
    out.write(f"// ----- after {name} -----\n{text}")


def run_pipeline(graph: Graph, stages: list[Stage] | None = None, *,
                 print_after: str | None = None, stop_after: str | None = None,
                 verify_each: bool = False, out: TextIO | None = None,
                 timings: dict | None = None) -> Any:
    """Run `stages` in order (default: the graph passes) and return the last one's artefact.

    `print_after` is a stage name or "all"; the verifier runs between graph passes when
    `verify_each` (as under test). `timings` gets each graph pass's seconds, their total
    (`passes_seconds`) and the kernel count before fusion (`kernels_unfused`)."""
    stages = passes_for() if stages is None else stages
    _check_flags(stages, print_after, stop_after)
    start = graphs_done = time.perf_counter()
    verify(graph)
    artefact: Any = graph
    for name, fn in stages:
        begun = time.perf_counter()
        if name == "fuse" and timings is not None:
            timings["kernels_unfused"] = kernel_count(artefact)
        artefact = fn(artefact)
        if isinstance(artefact, Graph):
            graphs_done = time.perf_counter()
            if timings is not None:
                timings[f"{name}_seconds"] = graphs_done - begun
            if verify_each:
                verify(artefact)
        if print_after in ("all", name):
            _print(name, artefact, print_after == name, out or sys.stdout)
        if stop_after == name:
            break
    if timings is not None:
        timings["passes_seconds"] = graphs_done - start
    return artefact
