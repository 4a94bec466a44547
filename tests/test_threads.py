"""Multi-core: large matmul kernels split across threads give exactly the single-thread result;
small kernels stay single-threaded; the thread count is configurable."""
import numpy as np
import pytest
from graphc.models.mlp import build_mlp

import graphc as gc
from graphc import runtime


@pytest.fixture
def threads():
    yield runtime.set_num_threads
    runtime.set_num_threads(None)


def _mlp_state_after_steps(n_threads, steps=3):
    runtime.set_num_threads(n_threads)
    g = build_mlp((300, 256, 130, 10), batch=64)
    step = gc.compile_train_step(g, "loss", gc.optim.Adam(lr=0.01))
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((64, 300)).astype(np.float32),
             "y": rng.integers(0, 10, 64)}
    losses = [step.run(feeds) for _ in range(steps)]
    return step, losses


def test_split_kernels_match_single_thread_bit_for_bit(threads):
    one, losses1 = _mlp_state_after_steps(1)
    two, losses2 = _mlp_state_after_steps(2)
    three, losses3 = _mlp_state_after_steps(3)  # more threads than cores is still correct
    assert one.stats["parallel_kernels"] == 0
    assert two.stats["parallel_kernels"] > 0 and two.stats["threads"] == 2
    assert losses1 == losses2 == losses3
    for name, value in one.state.items():
        np.testing.assert_array_equal(value, two.state[name], err_msg=name)
        np.testing.assert_array_equal(value, three.state[name], err_msg=name)


def test_small_kernels_stay_single_threaded(threads):
    threads(2)
    step = gc.compile_train_step(build_mlp((20, 16, 4), batch=8), "loss")
    assert step.stats["parallel_kernels"] == 0


def test_batched_matmul_with_broadcast_split(threads):
    threads(2)
    b = gc.GraphBuilder("bmm")
    x = b.input("x", (4, 128, 64))
    w = b.input("w", (64, 256))
    g = b.build({"y": gc.relu(x @ w)})
    exe = gc.compile(g)
    assert exe.stats["parallel_kernels"] == 1
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((4, 128, 64)).astype(np.float32),
             "w": rng.standard_normal((64, 256)).astype(np.float32)}
    np.testing.assert_allclose(exe.run(feeds)["y"], gc.interpret(g, feeds)["y"], rtol=1e-4,
                               atol=1e-4)


def test_thread_count_setting_is_validated(threads, monkeypatch):
    with pytest.raises(gc.GraphcError):
        threads(0)
    monkeypatch.setenv("GRAPHC_NUM_THREADS", "lots")
    with pytest.raises(gc.GraphcError, match="GRAPHC_NUM_THREADS"):
        runtime.num_threads()
    monkeypatch.setenv("GRAPHC_NUM_THREADS", "3")
    assert runtime.num_threads() == 3
