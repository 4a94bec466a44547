"""The `graphc bench` report: its records and its table.

Input: the per-framework results and machine facts models/bench/harness.py collects. Output: a
`BenchReport` (JSON-able with `to_json`) and `format_report(report)`, the printed table with
graphc's compile times, the NumPy comparison, the machine, and the FMA ceiling measured around
the rounds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

NUMPY_VARIANTS = ("numpy", "numpy-avx512")
LOSS_RTOL = 1e-3
BUSY_LOAD = 0.7  # a 1-minute load average above this when the bench starts earns a warning


@dataclass
class FrameworkResult:
    """One framework's row: `status` is ok, not installed or error (see `error`)."""

    name: str
    status: str = "ok"
    version: str = ""
    first_loss: float | None = None
    steps_per_round: int = 0
    round_seconds: list[float] = field(default_factory=list)
    median_s: float | None = None
    vs_graphc: float | None = None     # framework time / graphc time (> 1: graphc is faster)
    graphc_over: float | None = None   # graphc time / framework time
    gflops: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class BenchReport:
    model: str
    describe: str
    batch: int
    threads: int
    rounds: int
    flops_per_step: int
    compile: dict[str, float]
    frameworks: list[FrameworkResult]
    machine: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def failed(self) -> list[FrameworkResult]:
        return [r for r in self.frameworks if r.status == "error"]


def fastest_numpy(report: BenchReport) -> FrameworkResult | None:
    timed = [r for r in report.frameworks if r.name in NUMPY_VARIANTS and r.median_s]
    return min(timed, key=lambda r: r.median_s, default=None)


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_report(report: BenchReport) -> str:
    """The report as a table with a header line and graphc's compile times underneath."""
    plural = "s" if report.threads > 1 else ""
    title = (f"graphc bench {report.model}: {report.describe}, batch {report.batch}, "
             f"{report.threads} thread{plural}, {report.rounds} rounds; "
             f"{report.flops_per_step / 1e9:.3g} GFLOP per training step (matmul/conv)")
    header = (f"{'framework':<14}{'version':<14}{'median ms':>11}{'fw/graphc':>11}"
              f"{'graphc/fw':>11}{'GFLOP/s':>9}{'first loss':>12}  steps/round")
    lines = [title, header]
    for r in report.frameworks:
        if r.status != "ok":
            lines.append(f"{r.name:<14}{r.status}")
            continue
        ms = None if r.median_s is None else r.median_s * 1e3
        lines.append(f"{r.name:<14}{r.version[:13]:<14}{_cell(ms, '.3f'):>11}"
                     f"{_cell(r.vs_graphc, '.2f'):>11}{_cell(r.graphc_over, '.2f'):>11}"
                     f"{_cell(r.gflops, '.1f'):>9}{_cell(r.first_loss, '.5f'):>12}"
                     f"  {r.steps_per_round}")
    c = report.compile
    if c:
        lines.append(f"graphc compile: {c.get('compile_cold_s', 0):.3f} s cold (GRAPHC_CACHE=0), "
                     f"{c.get('compile_warm_s', 0):.3f} s warm (from the on-disk cache)")
    blas = [f"{r.name}: OPENBLAS_CORETYPE={r.info['OPENBLAS_CORETYPE']}"
            + (f" ({r.info['blas']})" if "blas" in r.info else "")
            for r in report.frameworks if "OPENBLAS_CORETYPE" in r.info]
    if blas:
        lines.append("; ".join(blas))
    graphc, best = report.frameworks[0], fastest_numpy(report)
    if best is not None and graphc.median_s:
        lines.append(f"graphc vs the faster NumPy ({best.name}): {best.graphc_over:.2f}x its "
                     f"step time")
    lines += [f"error: {r.error}" for r in report.failed]
    load = report.machine.get("loadavg_start")
    if load:
        lines.append(f"machine: {report.machine['cpu']}, {report.machine['cpus']} cpus, "
                     f"load average {load[0]:.2f} at start; first losses agree within "
                     f"rtol {LOSS_RTOL:g}" + ("" if not report.failed else " except as noted"))
        if load[0] > BUSY_LOAD:
            lines.append("warning: other processes were using the cpus; times may be inflated")
    peak = report.machine.get("fma_peak_gflops")
    if peak:
        cores = "" if report.threads == 1 else f"{report.threads} x "
        line = ("FMA ceiling of one core, measured by graphc's runner before and after the "
                f"rounds: {' and '.join(f'{p:.0f}' for p in peak)} GFLOP/s")
        if graphc.gflops:
            line += (f"; graphc's step reached {graphc.gflops / (max(peak) * report.threads):.0%}"
                     f" of {cores}{max(peak):.0f}")
        lines.append(line)
    return "\n".join(lines)
