"""Checkpoints of a training step: its params and optimizer state, durable and bound to the model.

Input: a path, the arrays to keep, and what they belong to (the hash of the graph they train and
the optimizer's settings). Output: `save_checkpoint` writes a versioned .npz whose reserved
entry `__graphc__` holds that metadata as JSON: to a temp file beside the target (named
`.<file>.<pid>.graphc-tmp`), fsync'd, renamed over the target, then the directory fsync'd; its
mode follows the umask. Temp files left by a killed writer are removed by the next save or load
of the same path. `load_checkpoint` returns (arrays, metadata); a file that is not a readable
checkpoint (empty, truncated, bit-flipped, another format) is a GraphcError saying what is wrong.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from graphc.errors import GraphcError
from graphc.ir import Graph

FORMAT = 1
META = "__graphc__"


def graph_hash(graph: Graph) -> str:
    """What a checkpoint is bound to: the graph's text and its params' names and types."""
    h = hashlib.sha256(graph.to_text().encode())
    for i in graph.inputs:
        h.update(f"{i.role} {i.name} {i.value.type}\n".encode())
    return h.hexdigest()


def _temp_pattern(path: str) -> str:
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.*.graphc-tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: str) -> None:
    """Delete the temp files of writers of `path` that are no longer running."""
    for temp in glob.glob(_temp_pattern(path)):
        try:
            pid = int(temp.rsplit(".", 2)[-2])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    if META in arrays:
        raise GraphcError(f"a tensor may not be named {META!r} in a checkpoint")
    remove_stale_temps(path)
    target = os.path.abspath(path)
    directory, name = os.path.split(target)
    temp = os.path.join(directory, f".{name}.{os.getpid()}.graphc-tmp")
    header = json.dumps({"format": FORMAT, **meta}, sort_keys=True)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{META: np.frombuffer(header.encode(), np.uint8)}, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    remove_stale_temps(path)
    where = f"checkpoint {path!r}"
    if not os.path.isfile(path):
        raise GraphcError(f"{where}: no such file")
    if os.path.getsize(path) == 0:
        raise GraphcError(f"{where} is empty (a write that never finished?)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise GraphcError(f"{where} is damaged (truncated or corrupted): {err}") from None
    except (OSError, ValueError, KeyError) as err:
        raise GraphcError(f"{where} is not a graphc checkpoint: {err}") from None
    if META not in arrays:
        raise GraphcError(f"{where} is not a graphc checkpoint (no {META!r} header; files "
                          f"saved before checkpoint format {FORMAT} cannot be loaded)")
    try:
        meta = json.loads(arrays.pop(META).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise GraphcError(f"{where}: its header is damaged: {err}") from None
    if meta.get("format") != FORMAT:
        raise GraphcError(f"{where} has checkpoint format {meta.get('format')!r}; this graphc "
                          f"reads format {FORMAT}")
    return arrays, meta
