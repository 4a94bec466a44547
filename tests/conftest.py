"""Test-wide setup: compiled test graphs go to a temporary compile cache, not the user's."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_compile_cache(tmp_path_factory):
    """Every graph the suite compiles lands in a session directory that pytest cleans up
    (tests that exercise the cache itself point it elsewhere with monkeypatch)."""
    saved = os.environ.get("GRAPHC_CACHE_DIR")
    os.environ["GRAPHC_CACHE_DIR"] = str(tmp_path_factory.mktemp("graphc-cache"))
    yield
    if saved is None:
        os.environ.pop("GRAPHC_CACHE_DIR", None)
    else:
        os.environ["GRAPHC_CACHE_DIR"] = saved
