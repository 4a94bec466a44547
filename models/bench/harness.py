"""`graphc bench`: graphc's training step side by side with NumPy, PyTorch and JAX.

Input: a bench model name (models/bench/frameworks.py), the frameworks to compare, threads,
batch size and rounds. Output: a `BenchReport` (step-time medians, ratios to graphc, GFLOP/s,
first losses, graphc's cold and warm compile times), printed as a table or written as JSON.

How it measures: the model is built once here; its initial params and one batch go to a
temporary .npz that every framework loads, so all start from the same weights and data. Each
framework runs in its own process (models/bench/runner.py), started with the thread settings in
its environment before it imports anything. Runners stay alive and are asked in turn for a
round of K steps (K sized so a round lasts about `round_time`), R times, rotating who goes
first; the step time of a framework is the median over its rounds. "numpy" is measured twice:
with the environment's OPENBLAS_CORETYPE and, as "numpy-avx512", with it removed.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
from typing import IO, Any

import numpy as np
from graphc.models.bench.report import (
    LOSS_RTOL,
    NUMPY_VARIANTS,
    BenchReport,
    FrameworkResult,
    format_report,
)

from graphc.errors import GraphcError
from graphc.flops import training_flops

COMPETITORS = ("numpy", "torch", "jax")
OPT_IN = ("numpy-avx512", "torch-compile")  # nameable in --vs one at a time
MODULE_OF = {"graphc": "llvmlite", "numpy": "numpy", "numpy-avx512": "numpy",
             "torch": "torch", "torch-compile": "torch", "jax": "jax"}
LR = 0.01
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "GRAPHC_NUM_THREADS")


# --- what to run ---------------------------------------------------------------------------
def parse_frameworks(vs: str) -> list[str]:
    """graphc plus the frameworks named in `--vs` (comma-separated; `numpy` means both NumPy
    variants, which can also be named one at a time; `torch-compile` only when named)."""
    names = ["graphc"]
    for name in (n.strip() for n in vs.split(",") if n.strip()):
        if name not in (*COMPETITORS, *OPT_IN, "graphc"):
            raise GraphcError(f"unknown framework {name!r} in --vs; choose from "
                              f"{', '.join(COMPETITORS)} (or {', '.join(OPT_IN)})")
        for n in NUMPY_VARIANTS if name == "numpy" else (name,):
            if n not in names:
                names.append(n)
    return names


def bench_model(name: str):
    from graphc.models.bench.frameworks import BENCH_MODELS

    if name not in BENCH_MODELS:
        raise GraphcError(f"unknown bench model {name!r}; "
                          f"choose from {', '.join(BENCH_MODELS)}")
    return BENCH_MODELS[name]


def installed(framework: str) -> bool:
    return importlib.util.find_spec(MODULE_OF[framework]) is not None


# --- runner processes ----------------------------------------------------------------------
def child_env(framework: str, threads: int, root: str) -> dict[str, str]:
    """The environment of a runner: thread limits set before any framework is imported."""
    env = dict(os.environ)
    for var in THREAD_VARIABLES:
        env[var] = str(threads)
    eigen = "false" if threads == 1 else "true"
    env["XLA_FLAGS"] = " ".join(filter(None, (
        os.environ.get("XLA_FLAGS", ""),
        f"--xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={threads}")))
    env.setdefault("JAX_PLATFORMS", "cpu")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))
    if framework == "numpy-avx512":
        env.pop("OPENBLAS_CORETYPE", None)
    return env


class Runner:
    """A live runner process for one framework, spoken to one JSON line at a time."""

    def __init__(self, framework: str, argv: list[str], env: dict[str, str], log: IO[str]):
        self.framework, self.log = framework, log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graphc.models.bench.runner", framework, *argv], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)

    def receive(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise GraphcError(f"{self.framework} runner exited (code {self.proc.returncode})"
                              f"{self.stderr_tail()}")
        message = json.loads(line)
        if "error" in message:
            raise GraphcError(f"{self.framework}: {message['error']}")
        return message

    def run(self, steps: int) -> dict[str, Any]:
        self.proc.stdin.write(f"run {steps}\n")
        self.proc.stdin.flush()
        return self.receive()

    def fma_peak(self) -> float | None:
        """One core's FMA ceiling, measured by the runner now (runtime/peak.py); None if the
        measurement failed (the runner's log says why)."""
        self.proc.stdin.write("peak\n")
        self.proc.stdin.flush()
        answer = self.receive()
        if answer["gflops"] is None:
            print(f"FMA ceiling not measured: {answer.get('why')}", file=self.log)
        return answer["gflops"]

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def stderr_tail(self, lines: int = 5) -> str:
        self.log.flush()
        text = pathlib.Path(self.log.name).read_text(errors="replace").strip().splitlines()
        return (":\n  " + "\n  ".join(text[-lines:])) if text else ""


def start_runners(names: list[str], results: dict[str, FrameworkResult], argv: list[str],
                  threads: int, workdir: str) -> dict[str, Runner]:
    """Start each installed framework's runner in turn (one at a time, so start-up work and
    graphc's compile timing do not compete) and record its first loss and version."""
    from graphc import models

    root = str(pathlib.Path(models.__file__).resolve().parent.parent)
    runners = {}
    for name in names:
        if not installed(name):
            results[name].status = "not installed"
            continue
        log = open(os.path.join(workdir, f"{name}.log"), "w+")  # noqa: SIM115 - runner owns it
        runner = Runner(name, argv, child_env(name, threads, root), log)
        try:
            ready = runner.receive()
        except GraphcError as err:
            runner.close()
            results[name].status, results[name].error = "error", str(err)
            continue
        r = results[name]
        r.first_loss, r.version, r.info = ready["first_loss"], ready["version"], ready["info"]
        r.steps_per_round = ready["step_estimate_s"]  # seconds for now; rounds() sizes it
        runners[name] = runner
    return runners


def check_first_losses(results: dict[str, FrameworkResult], runners: dict[str, Runner]) -> None:
    """Every framework's first loss must match graphc's (or NumPy's when graphc failed)."""
    reference = next((r for r in results.values() if r.first_loss is not None), None)
    if reference is None:
        return
    for name in list(runners):
        r = results[name]
        if not math.isclose(r.first_loss, reference.first_loss, rel_tol=LOSS_RTOL):
            r.status = "error"
            r.error = (f"{name}: first loss {r.first_loss:.6g} disagrees with "
                       f"{reference.name}'s {reference.first_loss:.6g} (rtol {LOSS_RTOL:g})")
            runners.pop(name).close()


def play_rounds(runners: dict[str, Runner], results: dict[str, FrameworkResult], rounds: int,
                round_time: float) -> None:
    """R interleaved rounds; the first framework of each round rotates."""
    for name in runners:
        estimate = results[name].steps_per_round
        results[name].steps_per_round = max(1, round(round_time / max(estimate, 1e-9)))
    order = list(runners)
    for i in range(rounds if order else 0):
        for name in order[i % len(order):] + order[:i % len(order)]:
            if name not in runners:
                continue
            r = results[name]
            try:
                answer = runners[name].run(r.steps_per_round)
            except GraphcError as err:
                r.status, r.error = "error", str(err)
                runners.pop(name).close()
                continue
            r.round_seconds.append(answer["seconds"] / answer["steps"])


def fma_peak(runners: dict[str, Runner], results: dict[str, FrameworkResult]) -> float | None:
    """One core's FMA ceiling measured by graphc's runner, if it is still running."""
    if "graphc" not in runners:
        return None
    try:
        return runners["graphc"].fma_peak()
    except GraphcError as err:
        results["graphc"].status, results["graphc"].error = "error", str(err)
        runners.pop("graphc").close()
        return None


def summarise(results: dict[str, FrameworkResult], flops: int) -> None:
    for r in results.values():
        if r.status == "ok" and r.round_seconds:
            r.median_s = statistics.median(r.round_seconds)
            r.gflops = flops / r.median_s / 1e9
    graphc = results.get("graphc")
    if graphc is None or graphc.median_s is None:
        return
    for r in results.values():
        if r.median_s is not None:
            r.vs_graphc, r.graphc_over = r.median_s / graphc.median_s, graphc.median_s / r.median_s


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cpus": os.cpu_count(), "loadavg_start": load,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
            "python": platform.python_version()}


# --- the whole benchmark -------------------------------------------------------------------
def run_bench(model_name: str = "mlp-medium", vs: str = ",".join(COMPETITORS), threads: int = 1,
              batch: int | None = None, rounds: int = 10, round_time: float = 0.25,
              seed: int = 0) -> BenchReport:
    """Benchmark graphc's training step of `model_name` against the frameworks in `vs`."""
    model = bench_model(model_name)
    names = parse_frameworks(vs)
    if threads < 1 or rounds < 1 or (batch is not None and batch < 1):
        raise GraphcError("--threads, --rounds and --batch must be at least 1")
    from graphc.models.bench.frameworks import make_batch, pack

    batch = batch or model.batch
    graph = model.build(batch, seed=seed)
    results = {n: FrameworkResult(n) for n in names}
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="graphc-bench-") as workdir:
        data = os.path.join(workdir, "data.npz")
        np.savez(data, **pack(graph.initializers, make_batch(graph, seed)))
        cache = os.path.join(workdir, "cache")
        argv = [model.name, str(batch), data, repr(LR), str(threads), cache]
        runners = start_runners(names, results, argv, threads, workdir)
        try:
            check_first_losses(results, runners)
            peak = [fma_peak(runners, results)]
            play_rounds(runners, results, rounds, round_time)
            peak.append(fma_peak(runners, results))
            machine["fma_peak_gflops"] = [p for p in peak if p]  # before and after, per core
        finally:
            for runner in runners.values():
                runner.close()
                runner.log.close()
    flops = training_flops(graph)
    summarise(results, flops)
    machine["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    compile_times = {k: v for k, v in results["graphc"].info.items() if k.startswith("compile")}
    return BenchReport(model.name, model.describe, batch, threads, rounds, flops, compile_times,
                       list(results.values()), machine)


def main(model: str, vs: str, threads: int, batch: int | None, rounds: int, round_time: float,
         json_path: str | None, out: IO[str] | None = None) -> int:
    """`graphc bench`: print the table (and write JSON); exit 1 when a framework failed."""
    report = run_bench(model, vs, threads, batch, rounds, round_time)
    print(format_report(report), file=out or sys.stdout)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(report.to_json(), f, indent=2)
    return 1 if report.failed else 0
