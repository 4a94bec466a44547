"""Checkpoints are durable and bound to their model; compiled steps are safe across threads;
tensors larger than the machine are refused before allocation.

Input: a small MLP training step, its checkpoints, damaged copies of them, a writer killed
with SIGKILL in the middle of saves, and 4 threads sharing one compiled executable. Output:
pass/fail that every damaged file is a GraphcError saying what is wrong, that a killed writer
leaves no file behind once the next save or load has run and never a torn checkpoint, that the
file mode follows the umask, that the header carries the format, graph hash and optimizer, and
that 4 threads x 1000 calls all equal the interpreter's results, and that a 2^40-element
input is a GraphcError naming it, raised at compile time.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import graphc as gc
from graphc.checkpoint import META, load_checkpoint


def _step():
    b = gc.GraphBuilder("mlp")
    x = b.input("x", (8, 6))
    y = b.input("y", (8,), "i64")
    w = b.param("w", np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32))
    graph = b.build({"loss": gc.softmax_cross_entropy(x @ w, y)})
    return graph, gc.compile_train_step(graph, "loss", gc.optim.Adam(lr=0.01))


def _feeds(seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((8, 6)).astype(np.float32), "y": rng.integers(0, 4, 8)}


def test_header_mode_and_round_trip(tmp_path):
    _, step = _step()
    step.run(_feeds())
    path = str(tmp_path / "c.npz")
    old = os.umask(0o027)
    try:
        step.save(path)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o640
    arrays, meta = load_checkpoint(path)
    assert meta["format"] == 1 and meta["graph_name"] == "mlp" and "Adam" in meta["optimizer"]
    assert len(meta["graph"]) == 64 and META not in arrays and set(arrays) == set(step.state)
    assert os.listdir(tmp_path) == ["c.npz"]


@pytest.mark.parametrize("damage", ["empty", "truncated", "bitflip", "not_npz", "no_header"])
def test_damaged_checkpoints_are_graphc_errors(tmp_path, damage):
    _, step = _step()
    path = tmp_path / "c.npz"
    step.save(str(path))
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "bitflip":
        flipped = bytearray(data)
        flipped[len(data) // 3] ^= 0x40
        path.write_bytes(bytes(flipped))
    elif damage == "not_npz":
        path.write_bytes(b"hello, not a zip")
    else:
        np.savez(path, w=np.zeros((6, 4), np.float32))
    with pytest.raises(gc.GraphcError, match=f"checkpoint {str(path)!r}"):
        step.load(str(path))


WRITER = """
import sys, numpy as np, graphc as gc
b = gc.GraphBuilder("mlp")
x = b.input("x", (8, 6))
y = b.input("y", (8,), "i64")
w = b.param("w", np.zeros((256, 256), np.float32))
v = b.param("v", np.zeros((6, 256), np.float32))
graph = b.build({"loss": gc.softmax_cross_entropy(x @ v @ w, y)})
step = gc.compile_train_step(graph, "loss", gc.optim.SGD(lr=0.1))
print("ready", flush=True)
k = 0
while True:
    for p in step.params.values():
        p[...] = k
    step.save(sys.argv[1])
    k += 1
"""


def test_killed_writers_never_tear_and_leave_nothing(tmp_path):
    path = str(tmp_path / "c.npz")
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + np.random.default_rng(len(os.listdir(tmp_path))).random() * 0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        if os.path.exists(path):
            arrays, _ = load_checkpoint(path)  # also removes the dead writer's temp file
            k = next(iter(arrays.values())).reshape(-1)[0]
            assert all(np.all(a == k) for a in arrays.values())  # one save's, never a mix
    load_checkpoint(path)
    assert os.listdir(tmp_path) == ["c.npz"]


def test_four_threads_share_one_executable():
    graph, _ = _step()
    forward = gc.compile(graph)
    feeds = [_feeds(seed) for seed in range(4)]
    want = [gc.interpret(graph, f)["loss"] for f in feeds]
    errors = []

    def worker(k):
        for _ in range(1000):
            got = forward.run(feeds[k])["loss"]
            if not np.allclose(got, want[k], rtol=1e-5):
                errors.append((k, got, want[k]))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_save_during_runs_on_other_threads_is_a_whole_step(tmp_path):
    _, step = _step()
    stop = threading.Event()

    def train():
        while not stop.is_set():
            step.run(_feeds(1))

    runner = threading.Thread(target=train)
    runner.start()
    try:
        for k in range(20):
            step.save(str(tmp_path / "c.npz"))
            arrays, meta = load_checkpoint(str(tmp_path / "c.npz"))
            assert meta["graph_name"] == "mlp" and set(arrays) == set(step.state)
    finally:
        stop.set()
        runner.join()


def test_a_tensor_larger_than_the_machine_is_refused_before_allocation():
    b = gc.GraphBuilder("huge")
    x = b.input("x", (2**40,))
    graph = b.build({"y": gc.relu(x) * 2.0})
    with pytest.raises(gc.GraphcError, match=r"graph 'huge'.s input 'x' \(f32\[1099511627776\]\) "
                                             r"needs [0-9,]+ bytes .*more than this machine"):
        gc.compile(graph)


def _chain(n: int) -> tuple[gc.Graph, gc.Tensor]:
    b = gc.GraphBuilder("chain")
    y = x = b.input("x", (64,))
    for i in range(n):
        y = gc.tanh(y) * 0.5 + 0.1 if i % 2 else gc.relu(y) + 0.01
    return b.build({"y": y}), x


def _chain_reference(x: np.ndarray, n: int) -> np.ndarray:
    y = x.astype(np.float64)
    for i in range(n):
        y = np.tanh(y) * 0.5 + 0.1 if i % 2 else np.maximum(y, 0) + 0.01
    return y


def test_a_4000_op_chain_compiles_in_kernels_of_bounded_size():
    """No recursion over the graph's depth (lowering a 1000-op chain overflowed Python's
    stack), and long chains are cut into kernels of at most MAX_KERNEL_NODES ops."""
    from graphc.passes.fusion import MAX_KERNEL_NODES

    graph, _ = _chain(1000)  # 4000 nodes (the constants included)
    exe = gc.compile(graph)
    bodies = [[m for m in n.attrs["body"].nodes if m.op != "constant"]
              for n in exe.graph.nodes if n.op == "fused"]
    assert len(bodies) >= 2000 // MAX_KERNEL_NODES
    assert all(len(ops) <= MAX_KERNEL_NODES for ops in bodies)
    x = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    np.testing.assert_allclose(exe.run({"x": x})["y"], _chain_reference(x, 1000), rtol=1e-5,
                               atol=1e-6)
