"""In-place updates must never change results: a kernel may overwrite a param only when every
value it computes from that param is read at the very index being written."""
import numpy as np
import pytest

import graphc as gc


@pytest.fixture
def threads():
    yield gc.set_num_threads
    gc.set_num_threads(None)


def _check_update(g, feeds, expect_inplace=None):
    exe = gc.compile(g)
    exe.run(feeds)
    want = gc.interpret(g, feeds, updates=True)
    for name in g.updates:
        np.testing.assert_allclose(exe.params[name], want[f"update:{name}"], rtol=1e-5,
                                   atol=1e-4, err_msg=name)
    if expect_inplace is not None:
        assert exe.stats["inplace_updates"] == expect_inplace
    return exe


def test_update_through_a_transpose_is_not_written_in_place():
    b = gc.GraphBuilder("t")
    x = b.input("x", (4, 4))
    w = b.param("w", np.arange(16, dtype=np.float32).reshape(4, 4))
    g = b.build({"s": gc.sum(x)}, updates={"w": gc.transpose(w * 2.0)})
    _check_update(g, {"x": np.ones((4, 4), np.float32)}, expect_inplace=0)


@pytest.mark.parametrize("n, n_threads", [(64, 1), (300, 1), (256, 2), (256, 4)])
def test_update_read_as_a_matmul_operand_is_not_written_in_place(threads, n, n_threads):
    threads(n_threads)
    rng = np.random.default_rng(0)
    b = gc.GraphBuilder("mm")
    x = b.input("x", (n, n))
    w = b.param("w", rng.standard_normal((n, n)).astype(np.float32))
    g = b.build({"s": gc.sum(x)}, updates={"w": (w * 2.0) @ x})
    _check_update(g, {"x": rng.standard_normal((n, n)).astype(np.float32)}, expect_inplace=0)


def test_elementwise_updates_are_still_written_in_place():
    b = gc.GraphBuilder("sgd")
    x = b.input("x", (8, 8))
    w = b.param("w", np.ones((8, 8), np.float32))
    g = b.build({"s": gc.sum(x)}, updates={"w": w - 0.1 * gc.tanh(w) * x})
    _check_update(g, {"x": np.full((8, 8), 0.5, np.float32)}, expect_inplace=1)


def test_matmul_with_an_empty_inner_dimension_gives_zeros():
    b = gc.GraphBuilder("k0")
    a, c = b.input("a", (3, 0)), b.input("c", (0, 4))
    g = b.build({"y": gc.relu(a @ c) + 1.0})
    feeds = {"a": np.zeros((3, 0), np.float32), "c": np.zeros((0, 4), np.float32)}
    np.testing.assert_array_equal(gc.compile(g).run(feeds)["y"], np.ones((3, 4)))


def test_mean_over_an_empty_axis_is_nan_like_numpy():
    b = gc.GraphBuilder("e")
    x = b.input("x", (3, 0))
    g = b.build({"m": gc.mean(x, axis=1)})
    feeds = {"x": np.zeros((3, 0), np.float32)}
    np.testing.assert_array_equal(gc.compile(g).run(feeds)["m"], gc.interpret(g, feeds)["m"])


@pytest.mark.parametrize("reduce", [gc.max, gc.reduce_min])
def test_max_and_min_over_an_empty_axis_are_their_identity_like_onnx(reduce):
    b = gc.GraphBuilder("e")
    x = b.input("x", (3, 0))
    g = b.build({"m": reduce(x, axis=1)})
    feeds = {"x": np.zeros((3, 0), np.float32)}
    want = gc.interpret(g, feeds)["m"]
    assert np.all(np.isinf(want))
    np.testing.assert_array_equal(gc.compile(g).run(feeds)["m"], want)


def test_label_checks_see_validated_feeds():
    """Feeds given as lists are converted and validated before the label-range check."""
    b = gc.GraphBuilder("sce")
    logits, y = b.input("logits", (2, 3)), b.input("y", (2,), "i64")
    exe = gc.compile(b.build({"loss": gc.softmax_cross_entropy(logits, y)}))
    x = np.zeros((2, 3), np.float32)
    assert exe.run({"logits": x, "y": [0, 1]})["loss"] == pytest.approx(np.log(3))
    with pytest.raises(gc.GraphcError, match="label 5"):
        exe.run({"logits": x, "y": [0, 5]})
    with pytest.raises(gc.FeedError, match="'y'"):
        exe.run({"logits": x, "y": [0.5, 1.5]})
