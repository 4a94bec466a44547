"""Differential fuzzing on random graphs (tests/fuzz_graphs.py).

Input: hypothesis-drawn graphs and feeds. Output: pass/fail of four properties:
compiled with fusion == interpreter; compiled with fusion == compiled without it; autodiff ==
central differences; the fused graph's text round-trips and it interprets like the unfused one.
CI runs a fixed, derandomized set of examples; `GRAPHC_FUZZ_EXAMPLES=2000` runs that many
fresh random examples per property instead (see the README's "Fuzzing" section).
"""
from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, note, settings

import graphc as gc
from graphc.compile import Executable
from graphc.pipeline import passes_for, run_pipeline
from tests.fuzz_graphs import FuzzCase, graphs

LONG_RUN = os.environ.get("GRAPHC_FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(LONG_RUN) if LONG_RUN else 100, deadline=None,
                derandomize=not LONG_RUN, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_outputs_close(got: dict, want: dict, rtol: float, atol: float, what: str) -> None:
    assert set(got) == set(want)
    for name, ref in want.items():
        assert got[name].shape == ref.shape and got[name].dtype == ref.dtype, (what, name)
        np.testing.assert_allclose(got[name], ref, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=f"{what}: output {name}")


@FUZZ
@given(graphs())
def test_compiled_with_fusion_matches_interpreter(case: FuzzCase):
    note(case.graph.to_text())
    exe = gc.compile(case.graph)
    assert_outputs_close(exe.run(case.feeds), gc.interpret(case.graph, case.feeds),
                         rtol=1e-4, atol=1e-5, what="fused vs interpreter")


@FUZZ
@given(graphs())
def test_fusion_does_not_change_results(case: FuzzCase):
    note(case.graph.to_text())
    fused = gc.compile(case.graph).run(case.feeds)
    unfused = Executable(case.graph, passes_for(fusion=False)).run(case.feeds)
    scale = max((float(np.max(np.abs(a), initial=0)) for a in unfused.values()), default=1.0)
    assert_outputs_close(fused, unfused, rtol=1e-6, atol=1e-6 * max(scale, 1.0),
                         what="fused vs unfused")


@FUZZ
@given(graphs(smooth=True, max_ops=6, reduce_to_scalar=True))
def test_autodiff_matches_finite_differences(case: FuzzCase):
    note(case.graph.to_text())
    gc.check_grads(case.graph, "loss", list(case.leaves), case.feeds, tol=1e-5)


@FUZZ
@given(graphs())
def test_fused_graph_round_trips_and_interprets_like_unfused(case: FuzzCase):
    note(case.graph.to_text())
    fused = run_pipeline(case.graph, passes_for())
    text = fused.to_text()
    parsed = gc.parse(text)
    assert parsed.to_text() == text
    unfused = run_pipeline(case.graph, passes_for(fusion=False))
    feeds = {**{k: np.array(v) for k, v in case.graph.initializers.items()}, **case.feeds}
    want = gc.interpret(unfused, feeds)
    # the same NumPy references on the same arrays: equal to the bit
    for g in (fused, parsed):
        got = gc.interpret(g, feeds)
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
