"""Memory planner properties: no two simultaneously live buffers overlap; the arena is never
smaller than the lower bound and reuses dead memory."""
from graphc.passes.memory import HEURISTICS, Interval, aligned, lower_bound, place, plan_intervals
from hypothesis import given, settings
from hypothesis import strategies as st


@st.composite
def intervals(draw):
    n = draw(st.integers(1, 30))
    out = []
    for i in range(n):
        start = draw(st.integers(0, 20))
        end = draw(st.integers(start, start + draw(st.integers(0, 10))))
        out.append(Interval(f"b{i}", draw(st.integers(1, 5000)), start, end))
    return out


@settings(max_examples=200, deadline=None)
@given(intervals())
def test_live_buffers_never_overlap(ivs):
    plan = plan_intervals(ivs)
    for i, a in enumerate(ivs):
        for b in ivs[i + 1:]:
            if a.start <= b.end and b.start <= a.end:
                a0, b0 = plan.offsets[a.name], plan.offsets[b.name]
                assert a0 + aligned(a.nbytes) <= b0 or b0 + aligned(b.nbytes) <= a0, (a, b, plan)
    assert plan.lower_bound_bytes <= plan.planned_bytes <= plan.naive_bytes
    assert all(off % 64 == 0 for off in plan.offsets.values())


def test_dead_memory_is_reused():
    ivs = [Interval("a", 1000, 0, 1), Interval("b", 1000, 1, 2), Interval("c", 1000, 2, 3)]
    plan = plan_intervals(ivs)
    assert plan.planned_bytes == lower_bound(ivs) == 2 * aligned(1000)
    assert plan.offsets["a"] == plan.offsets["c"]


def _best_fit_by_hand(ivs, order):
    """The placement rule spelled out, one buffer and one gap at a time (the oracle for the
    vectorised `place`)."""
    placed, offsets = [], {}
    for iv in sorted(ivs, key=order):
        size = aligned(iv.nbytes)
        busy = sorted((off, off + aligned(o.nbytes)) for off, o in placed
                      if iv.start <= o.end and o.start <= iv.end)
        best, best_gap, cursor = None, None, 0
        for lo, hi in busy:
            if lo - cursor >= size and (best_gap is None or lo - cursor < best_gap):
                best, best_gap = cursor, lo - cursor
            cursor = max(cursor, hi)
        offsets[iv.name] = best if best is not None else cursor
        placed.append((offsets[iv.name], iv))
    return offsets


@settings(max_examples=200, deadline=None)
@given(intervals())
def test_placement_is_best_fit_in_each_order(ivs):
    for order in HEURISTICS.values():
        assert place(ivs, order) == _best_fit_by_hand(ivs, order)
