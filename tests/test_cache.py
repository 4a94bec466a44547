"""The on-disk compile cache: hits skip LLVM, bad entries are detected and rebuilt, concurrent
compiles of the same graph are safe, an entry holds the object file of every module."""
import hashlib
import multiprocessing
import os

import numpy as np
import pytest
from graphc.runtime import cache, stages

import graphc as gc


def small_graph(scale=2.0):
    b = gc.GraphBuilder("cached")
    x = b.input("x", (4, 8))
    w = b.param("w", np.linspace(-1, 1, 8 * 3, dtype=np.float32).reshape(8, 3))
    return b.build({"y": gc.tanh(x @ w) * scale})


FEEDS = {"x": np.arange(32, dtype=np.float32).reshape(4, 8) / 32}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("GRAPHC_CACHE", raising=False)
    return tmp_path


def entries(path):
    return sorted(p for p in path.iterdir() if p.suffix == ".o")


def test_second_compile_hits_the_cache(cache_dir):
    first = gc.compile(small_graph())
    second = gc.compile(small_graph())
    assert not first.stats["cached"] and second.stats["cached"]
    assert second.stats["optimize_seconds"] == 0.0
    np.testing.assert_array_equal(first.run(FEEDS)["y"], second.run(FEEDS)["y"])
    assert len(entries(cache_dir)) == 1
    assert "define" in second.llvm_ir  # IR text is rebuilt on demand after a hit


def test_a_different_graph_is_a_different_entry(cache_dir):
    gc.compile(small_graph(2.0))
    exe = gc.compile(small_graph(3.0))
    assert not exe.stats["cached"] and len(entries(cache_dir)) == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty"])
def test_corrupted_entries_are_detected_and_rebuilt(cache_dir, damage):
    expected = gc.compile(small_graph()).run(FEEDS)["y"]
    (entry,) = entries(cache_dir)
    data = entry.read_bytes()
    entry.write_bytes({"truncate": data[:len(data) // 2], "garbage": os.urandom(len(data)),
                       "flip": data[:-1] + bytes([data[-1] ^ 0xFF]), "empty": b""}[damage])
    exe = gc.compile(small_graph())
    assert not exe.stats["cached"]
    np.testing.assert_array_equal(exe.run(FEEDS)["y"], expected)
    assert gc.compile(small_graph()).stats["cached"]  # rewritten whole


def test_cache_can_be_turned_off(cache_dir, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE", "0")
    gc.compile(small_graph())
    assert not gc.compile(small_graph()).stats["cached"]
    assert entries(cache_dir) == []


def _compile_in_child(path, queue):
    os.environ["GRAPHC_CACHE_DIR"] = path
    queue.put(gc.compile(small_graph()).run(FEEDS)["y"].tolist())


def test_two_processes_compiling_the_same_graph(cache_dir):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_compile_in_child, args=(str(cache_dir), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert results[0] == results[1]
    assert len(entries(cache_dir)) == 1 and not list(cache_dir.glob("*.tmp"))
    assert gc.compile(small_graph()).stats["cached"]


def two_kernels():
    b = gc.GraphBuilder("two")
    x = b.input("x", (4, 8))
    w = b.param("w", np.linspace(-1, 1, 8 * 3, dtype=np.float32).reshape(8, 3))
    return b.build({"y": gc.tanh(x @ w), "s": gc.sum(gc.exp(x), axis=1)})


def test_an_entry_holds_every_module(cache_dir, monkeypatch):
    monkeypatch.setattr(stages, "compile_workers", lambda: 2)
    first = gc.compile(two_kernels())
    assert first.stats["llvm_modules"] >= 3  # the entry and two kernel modules
    (entry,) = entries(cache_dir)
    objects = cache.load(entry.stem)
    assert len(objects) == first.stats["llvm_modules"]
    monkeypatch.setattr(stages, "compile_workers", lambda: 1)  # a hit does not depend on it
    second = gc.compile(two_kernels())
    assert second.stats["cached"] and second.stats["llvm_modules"] == len(objects)
    for name, value in first.run(FEEDS).items():
        np.testing.assert_array_equal(second.run(FEEDS)[name], value)


@pytest.mark.parametrize("payload", [b"", b"\x05", (100).to_bytes(8, "little") + b"abc",
                                     (3).to_bytes(8, "little") + b"abc" + b"\x01\x02"])
def test_objects_that_do_not_add_up_are_rejected(cache_dir, payload):
    """A whole, checksummed entry whose object lengths are wrong is still a bad entry."""
    path = cache_dir / "k.o"
    path.write_bytes(cache.MAGIC + len(payload).to_bytes(8, "little") +
                     hashlib.sha256(payload).digest() + payload)
    assert cache.load("k") is None and not path.exists()


def test_the_cache_is_bounded_least_recently_used_first(cache_dir):
    """Pruning deletes the entries used longest ago until the rest fit; a hit refreshes an
    entry's time, so the entry just loaded survives where an older one goes."""
    from graphc.runtime import cache

    for i, name in enumerate(["old", "used", "new"]):
        path = cache_dir / f"{name}.o"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1000 + i, 1000 + i))
    os.utime(cache_dir / "used.o", (5000, 5000))  # what a load hit does (to the current time)
    cache.prune(cache_dir, 2000)
    assert sorted(p.name for p in cache_dir.iterdir()) == ["new.o", "used.o"]
    cache.prune(cache_dir, 1000)
    assert [p.name for p in cache_dir.iterdir()] == ["used.o"]


def test_a_hit_refreshes_the_entry_time(cache_dir):
    gc.compile(small_graph())
    (entry,) = entries(cache_dir)
    os.utime(entry, (1000, 1000))
    assert gc.compile(small_graph()).stats["cached"]
    assert entry.stat().st_mtime > 1000


def test_the_suite_does_not_write_the_users_cache():
    """tests/conftest.py points every compile of the suite at a temporary directory."""
    default = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                           "graphc")
    assert os.environ.get("GRAPHC_CACHE_DIR") not in (None, "", default)


def test_an_entry_under_another_key_is_a_miss_never_a_run(cache_dir):
    """Graph B's valid entry copied under graph A's key: A recompiles and gets A's results."""
    a_result = gc.compile(small_graph(2.0)).run(FEEDS)["y"]
    (a_entry,) = entries(cache_dir)
    gc.compile(small_graph(3.0))
    (b_entry,) = [e for e in entries(cache_dir) if e != a_entry]
    a_entry.write_bytes(b_entry.read_bytes())
    exe = gc.compile(small_graph(2.0))
    assert not exe.stats["cached"]
    np.testing.assert_array_equal(exe.run(FEEDS)["y"], a_result)


def test_a_checksummed_entry_of_garbage_objects_is_a_miss(cache_dir):
    expected = gc.compile(small_graph()).run(FEEDS)["y"]
    (entry,) = entries(cache_dir)
    key = entry.stem
    garbage = os.urandom(4096)
    entry.write_bytes(cache._pack(key, len(garbage).to_bytes(8, "little") + garbage))
    assert cache.load(key) is None and not entry.exists()
    exe = gc.compile(small_graph())
    assert not exe.stats["cached"]
    np.testing.assert_array_equal(exe.run(FEEDS)["y"], expected)


def test_the_directory_is_private_and_a_shared_one_is_not_used(tmp_path, monkeypatch):
    monkeypatch.delenv("GRAPHC_CACHE", raising=False)
    private = tmp_path / "private" / "graphc"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(private))
    gc.compile(small_graph())
    assert private.stat().st_mode & 0o777 == 0o700 and entries(private)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(shared))
    with pytest.warns(UserWarning, match="other users may write"):
        exe = gc.compile(small_graph())
    assert not exe.stats["cached"] and not list(shared.iterdir())
