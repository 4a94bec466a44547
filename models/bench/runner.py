"""One framework's benchmark process, driven by `graphc bench` (models/bench/harness.py).

Input: `python -m models.bench_runner FRAMEWORK MODEL BATCH DATA.npz LR THREADS CACHE_DIR`, with
the thread variables (OMP/MKL/OPENBLAS/GRAPHC_NUM_THREADS, XLA_FLAGS) already in the environment,
so they hold before the framework is imported. Output: one JSON object per line on the original
stdout (anything the framework prints goes to stderr instead):

    (start)  -> {"ready": true, "first_loss", "version", "step_estimate_s", "info"}
                or {"error": message}
    run K    -> {"seconds": wall time of K steps, "steps": K, "loss": the last loss}
    peak     -> {"gflops": one core's FMA ceiling measured now (runtime/peak.py)}
    quit     -> the process exits

The process is pinned to THREADS cpus, so a framework that starts extra threads anyway cannot
use more cores than the others. For graphc, `info` has the compile times: `compile_cold_s` with
the cache off (`GRAPHC_CACHE=0`, the first compile in the process) and `compile_warm_s` from a
cache filled just before in CACHE_DIR.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import IO, Any

WARMUP_SECONDS, WARMUP_STEPS = 0.2, 2


def pin(threads: int) -> None:
    """Restrict this process to its first `threads` allowed cpus (where the OS supports it)."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, cpus[:max(1, threads)])


def compile_times(model, batch: int, arrays, lr: float, cache_dir: str) -> dict[str, float]:
    """graphc's cold compile (cache off) and, after one compile that fills the cache in
    `cache_dir`, the warm compile; the warm compile's step is the one benchmarked. Both are
    timed after graphc, its runtime and LLVM are imported and initialised (once per process,
    not part of compiling a graph)."""
    from graphc.models.bench.frameworks import compile_graphc

    from graphc import runtime

    runtime.initialize()
    os.environ["GRAPHC_CACHE"] = "0"
    start = time.perf_counter()
    compile_graphc(model, batch, arrays, lr)
    cold = time.perf_counter() - start
    os.environ["GRAPHC_CACHE"] = "1"
    os.environ["GRAPHC_CACHE_DIR"] = cache_dir
    compile_graphc(model, batch, arrays, lr)
    return {"compile_cold_s": cold}


def framework_info(framework: str, threads: int) -> dict[str, Any]:
    """What the report should say about how the framework ran (threads, BLAS kernels)."""
    info: dict[str, Any] = {}
    if framework.startswith("torch"):
        import torch

        torch.set_num_threads(threads)
        info["torch_threads"] = torch.get_num_threads()
    if framework.startswith("numpy"):
        info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE", "(unset)")
        try:
            from threadpoolctl import threadpool_info
            blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
            if blas:
                info["blas"] = f"{blas[0].get('internal_api')} {blas[0].get('architecture')}"
        except ImportError:
            pass
    return info


def setup(argv: list[str]) -> tuple[Any, dict[str, Any]]:
    """Load the data, build the framework's step and run its first step and warm-up."""
    framework, model_name, batch, data, lr, threads, cache_dir = argv
    pin(int(threads))
    import numpy as np
    from graphc.models.bench.frameworks import BENCH_MODELS, make_step, version

    model, batch_, lr_ = BENCH_MODELS[model_name], int(batch), float(lr)
    with np.load(data) as f:
        arrays = {k: f[k] for k in f.files}
    info = framework_info(framework, int(threads))
    if framework == "graphc":
        info.update(compile_times(model, batch_, arrays, lr_, cache_dir))
    start = time.perf_counter()
    step = make_step(framework, model, batch_, arrays, lr_)
    if framework == "graphc":
        info["compile_warm_s"] = time.perf_counter() - start
    first_loss = float(step())
    steps, start = 0, time.perf_counter()
    while steps < WARMUP_STEPS or time.perf_counter() - start < WARMUP_SECONDS:
        loss = step()
        steps += 1
    float(loss)
    estimate = (time.perf_counter() - start) / steps
    return step, {"ready": True, "first_loss": first_loss, "version": version(framework),
                  "step_estimate_s": estimate, "info": info}


def serve(step, out: IO[str]) -> None:
    """Answer `run K` with the wall time of K steps until `quit` or end of input."""
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            return
        if command[0] == "peak":
            try:
                from graphc.runtime.peak import fma_peak_gflops

                send(out, {"gflops": fma_peak_gflops()})
            except Exception as err:  # noqa: BLE001 - the report says it, the rounds go on
                send(out, {"gflops": None, "why": f"{type(err).__name__}: {err}"})
            continue
        k = int(command[1])
        start = time.perf_counter()
        for _ in range(k):
            loss = step()
        loss = float(loss)  # waits for frameworks that dispatch asynchronously (JAX)
        seconds = time.perf_counter() - start
        send(out, {"seconds": seconds, "steps": k, "loss": loss})


def send(out: IO[str], message: dict) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def main(argv: list[str]) -> int:
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the protocol owns the real stdout; prints from libraries go to stderr
    try:
        step, ready = setup(argv)
    except Exception as err:  # noqa: BLE001 - any failure is reported to the orchestrator
        traceback.print_exc()
        send(out, {"error": f"{type(err).__name__}: {err}"})
        return 1
    send(out, ready)
    serve(step, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
