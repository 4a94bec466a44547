"""The on-disk compile cache: machine code keyed by what produced it.

Input: a key (the lowered graph's text and its buffer plan, the llvmlite/LLVM versions, the
host CPU name and features, and a hash of graphc's own sources) and the object files of one
compile. Output: the object files back on a later compile, or None. Entries carry a magic, their
own full key, a length and a SHA-256 of key and payload (each object preceded by its length)
and are verified before use: a corrupted or truncated entry, one whose key is not the one asked
for (another graph's entry under this name), or one whose objects are not this platform's object
files holding the step's entry function is deleted and rebuilt, never run. The directory is made
0700; one that other users may write is not used (a warning says so): its entries could be
anybody's code.
Writes go to a temporary file in the same directory and are renamed into place, so two
processes compiling the same graph at once each see either no entry or a whole one.
`GRAPHC_CACHE_DIR` moves the cache; `GRAPHC_CACHE=0` turns it off. Every change to graphc's
sources makes new keys, so the cache is bounded: entries are used in least-recently-used
order (a hit refreshes its time) and about one store in 16 prunes the oldest entries until the
cache is under `GRAPHC_CACHE_MAX_MB` (256 by default).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pathlib
import tempfile
import warnings
from collections.abc import Sequence

import llvmlite
import llvmlite.binding as llvm
from graphc.runtime.target import host_cpu

MAGIC = b"GRAPHC-OBJ-3\n"
ENTRY_SYMBOL = b"graphc_main"  # the step's entry function, defined in one of the objects
OBJECT_MAGIC = b"\x7fELF"  # what llvmlite's object files start with on Linux
DEFAULT_MAX_MB = 256


def cache_dir() -> pathlib.Path | None:
    """The cache directory, or None when the cache is off or the directory is unsafe."""
    if os.environ.get("GRAPHC_CACHE", "1") == "0":
        return None
    base = pathlib.Path(os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "graphc"))
    with contextlib.suppress(FileNotFoundError):
        mode = base.stat().st_mode
        if mode & 0o022:
            warnings.warn(f"graphc: not using the compile cache {base}: other users may write "
                          f"to it (mode {mode & 0o777:o}); make it 0700", stacklevel=2)
            return None
    return base


@functools.cache
def _codegen_fingerprint() -> str:
    """Versions, host CPU and the sources of graphc/, passes/ and runtime/: op scalar bodies,
    planning passes and the code generator all shape the machine code, so a change to any of
    them invalidates every entry."""
    h = hashlib.sha256()
    h.update(f"{llvmlite.__version__}|{llvm.llvm_version_info}|".encode())
    cpu, features = host_cpu()
    h.update(f"{llvm.get_process_triple()}|{cpu}|{features}|".encode())
    root = pathlib.Path(__file__).resolve().parent.parent
    for package in ("graphc", "passes", "runtime"):
        for path in sorted((root / package).rglob("*.py")):
            h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(text: str) -> str:
    return hashlib.sha256(f"{_codegen_fingerprint()}\n{text}".encode()).hexdigest()


def _split(payload: bytes) -> list[bytes] | None:
    """The objects of a payload, or None if the lengths do not add up."""
    objects, at = [], 0
    while at < len(payload):
        size = int.from_bytes(payload[at:at + 8], "little")
        if at + 8 + size > len(payload):
            return None
        objects.append(payload[at + 8:at + 8 + size])
        at += 8 + size
    return objects or None


_KEY_BYTES = 64  # a key is a SHA-256 hex digest


def _pack(key: str, payload: bytes) -> bytes:
    stored = key.encode().ljust(_KEY_BYTES)[:_KEY_BYTES]
    return MAGIC + stored + len(payload).to_bytes(8, "little") + \
        hashlib.sha256(stored + payload).digest() + payload


def _unpack(data: bytes, key: str) -> list[bytes] | None:
    header = len(MAGIC) + _KEY_BYTES + 8 + 32
    if len(data) < header or not data.startswith(MAGIC):
        return None
    at = len(MAGIC)
    stored = data[at:at + _KEY_BYTES]
    size = int.from_bytes(data[at + _KEY_BYTES:at + _KEY_BYTES + 8], "little")
    digest, payload = data[at + _KEY_BYTES + 8:header], data[header:]
    if len(payload) != size or hashlib.sha256(stored + payload).digest() != digest:
        return None
    if stored != key.encode().ljust(_KEY_BYTES)[:_KEY_BYTES]:
        return None  # another graph's entry (copied or renamed here): never run it
    objects = _split(payload)
    if objects is None or not all(o.startswith(OBJECT_MAGIC) for o in objects) or \
            not any(ENTRY_SYMBOL in o for o in objects):
        return None
    return objects


def load(key: str) -> list[bytes] | None:
    """The verified object files stored under `key`, or None (a bad entry is removed)."""
    root = cache_dir()
    if root is None:
        return None
    path = root / f"{key}.o"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    objects = _unpack(data, key)
    with contextlib.suppress(OSError):
        if objects is None:
            path.unlink()
        else:
            os.utime(path)  # recently used: pruned last
    return objects


def prune(root: pathlib.Path, max_bytes: int) -> None:
    """Delete the least recently used entries (and stray temporaries) until the entries under
    `root` total at most `max_bytes`; entries another process removes meanwhile are skipped."""
    entries = []
    with contextlib.suppress(OSError), os.scandir(root) as scan:
        for entry in scan:
            with contextlib.suppress(OSError):
                stat = entry.stat()
                entries.append((stat.st_mtime, stat.st_size, entry.path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= max_bytes:
            break
        with contextlib.suppress(OSError):
            os.unlink(path)
            total -= size


def _max_bytes() -> int:
    try:
        return int(float(os.environ.get("GRAPHC_CACHE_MAX_MB", DEFAULT_MAX_MB)) * 2**20)
    except ValueError:
        return DEFAULT_MAX_MB * 2**20


def store(key: str, objects: Sequence[bytes]) -> None:
    """Write an entry atomically; failures (read-only disk, no space) only cost a rebuild."""
    root = cache_dir()
    if root is None:
        return
    payload = b"".join(len(obj).to_bytes(8, "little") + obj for obj in objects)
    tmp = None
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(_pack(key, payload))
        os.replace(tmp, root / f"{key}.o")
        if key[0] == "0":  # about one store in 16 (keys are hex digests)
            prune(root, _max_bytes())
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
