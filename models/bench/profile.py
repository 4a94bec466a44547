"""`graphc bench MODEL --profile`: where graphc's training step spends its time, kernel by kernel.

Input: a bench model name, its batch, the number of timed steps, and the threads. Output: a
`StepProfile`: for every kernel of the compiled SGD step (compiled with per-kernel cycle
counters, runtime/profile.py), its time per step, share of the step, FLOPs and GFLOP/s as a
share of the f32 FMA ceiling measured in the same run (runtime/peak.py); the step's wall time
beside the kernels' sum (the rest is the call from Python). `format_profile` prints it as a
table, biggest kernels first, with a role for each: matmul (a GEMM with its epilogue), conv
(a GEMM over im2col windows), conv backward-data (col2im), reduce, loop.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from graphc.runtime.peak import fma_peak_gflops
from graphc.runtime.profile import KernelProfile, cycles_per_second, profiling_on

import graphc as gc

WARMUP = 3


def role(kernel: KernelProfile) -> str:
    """What a kernel does in a training step, told from the ops fused into it."""
    if "col2im" in kernel.ops:
        return "conv backward-data (col2im)"
    if "windows" in kernel.ops and kernel.kind == "matmul":
        return "conv (GEMM over im2col windows)"
    if "windows" in kernel.ops:
        return "im2col / pooling windows"
    return kernel.kind


@dataclass
class StepProfile:
    model: str
    batch: int
    steps: int
    threads: int
    wall_s: float              # per step, measured around `run`
    kernels_s: float           # per step, the counted kernels' sum
    peak_gflops: float         # f32 FMA ceiling of one core, measured in this run
    kernels: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def profile_model(model_name: str, batch: int | None = None, steps: int = 20,
                  threads: int = 1, seed: int = 0) -> StepProfile:
    from graphc.models.bench.frameworks import make_batch
    from graphc.models.bench.harness import LR, bench_model

    if steps < 1 or threads < 1:
        raise gc.GraphcError("--profile needs at least 1 step and 1 thread")
    model = bench_model(model_name)
    batch = batch or model.batch
    graph = model.build(batch, seed=seed)
    feeds = make_batch(graph, seed)
    gc.set_num_threads(threads)
    with profiling_on():
        step = gc.compile_train_step(graph, loss="loss", optimizer=gc.optim.SGD(lr=LR))
    native = step.exe.native
    for _ in range(WARMUP):
        step.run(feeds)
    native.reset_profile()
    start = time.perf_counter()
    for _ in range(steps):
        step.run(feeds)
    wall = (time.perf_counter() - start) / steps
    rows = native.kernel_profile(cycles_per_second())
    peak = fma_peak_gflops() * threads
    report = StepProfile(model.name, batch, steps, threads, wall,
                         sum(r.seconds for r in rows) / steps, peak)
    for r in sorted(rows, key=lambda r: -r.seconds):
        gflops = r.gflops(steps)
        report.kernels.append({"kernel": r.name, "role": role(r), "ops": list(r.ops),
                               "ms": r.seconds / steps * 1e3, "flops": r.flops,
                               "gflops": gflops, "of_peak": gflops / peak if peak else 0.0})
    return report


def format_profile(p: StepProfile, top: int = 25) -> str:
    head = (f"{p.model}, batch {p.batch}, {p.threads} thread(s), {p.steps} steps: "
            f"{p.wall_s * 1e3:.3f} ms a step, kernels {p.kernels_s * 1e3:.3f} ms "
            f"({p.kernels_s / p.wall_s:.0%}); f32 FMA ceiling {p.peak_gflops:.1f} GFLOP/s")
    rows = [f"{'kernel':<7} {'ms':>8} {'share':>6} {'GFLOP/s':>8} {'of peak':>7}  role: ops"]
    for k in p.kernels[:top]:
        share = k["ms"] / (p.kernels_s * 1e3) if p.kernels_s else 0.0
        flops = f"{k['gflops']:8.1f} {k['of_peak']:7.0%}" if k["flops"] else f"{'':8} {'':7}"
        ops = ", ".join(op for op in k["ops"] if op != "constant")
        rows.append(f"{k['kernel']:<7} {k['ms']:8.3f} {share:6.1%} {flops}  {k['role']}: "
                    f"{ops[:70]}{'...' if len(ops) > 70 else ''}")
    if len(p.kernels) > top:
        rest = sum(k["ms"] for k in p.kernels[top:])
        rows.append(f"{len(p.kernels) - top} more kernels: {rest:.3f} ms")
    return "\n".join([head, *rows])
