"""Start-up: `import graphc` and `graphc --help` do not load onnx (and its ml_dtypes), which
takes most of a second; the ONNX functions load it on first use.

Input: fresh Python processes. Output: pass/fail on which modules they have imported.
"""
from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", (f"{code}\nimport sys\n"
                          "print(' '.join(sorted(sys.modules)))")],
                         check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_import_graphc_leaves_onnx_unloaded():
    assert not {"onnx", "ml_dtypes"} & _modules_after("import graphc")
    assert not {"onnx", "ml_dtypes"} & _modules_after(
        "import contextlib, io\nfrom graphc.cli import make_parser\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    make_parser().parse_args(['--help'])")


def test_onnx_functions_load_it_on_first_use():
    loaded = _modules_after("import graphc as gc\nf = gc.load_onnx\ng = gc.save_onnx")
    assert "onnx" in loaded and "graphc.onnx.importer" in loaded
    assert "graphc.onnx" in _modules_after("import graphc as gc\nm = gc.onnx")
