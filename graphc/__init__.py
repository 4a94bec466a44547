"""graphc: a compiler for training neural networks on CPUs.

Input: models written with the DSL (`GraphBuilder`, `gc.relu`, ...) or ONNX files.
Output: graphs that can be interpreted, differentiated, printed/parsed and compiled to native code.
The op functions (`gc.relu`, `gc.sum`, ...) are those of graphc.ops.api, one per public op in
the registry, so an op registered later (a test's temporary op) is `gc.<name>` too. The ONNX
functions (`gc.load_onnx`, ...) import onnx on first use: it takes most of a second to load.
"""
import graphc.ops.families  # noqa: F401  (every op registered first: nn's defaults are op functions)
from graphc import nn as layers  # noqa: F401
from graphc.builder import GraphBuilder, Tensor  # noqa: F401
from graphc.compile import (  # noqa: F401
    check_grads,
    compile,
    compile_train_step,
    compile_value_and_grad,
    grad,
    optim,
    set_num_threads,
)
from graphc.errors import (  # noqa: F401
    CompileError,
    FeedError,
    GradientCheckError,
    GradientError,
    GraphcError,
    ParseError,
    ShapeError,
    VerifyError,
)
from graphc.interpret import interpret  # noqa: F401
from graphc.ir import Graph, GraphInput, Node, Value  # noqa: F401
from graphc.ops import api as _op_api
from graphc.ops.api import *
from graphc.ops.api_nn import *
from graphc.passes.losses import with_loss  # noqa: F401
from graphc.text.parser import parse  # noqa: F401
from graphc.text.printer import print_graph  # noqa: F401
from graphc.types import TensorType  # noqa: F401
from graphc.verify import verify  # noqa: F401

globals().update({name: _op_api.op_function(name) for name in _op_api.op_names()})

# name -> the module that defines it, imported when the name is first asked for
_ONNX_NAMES = {"load_onnx": "graphc.onnx.importer", "describe_onnx": "graphc.onnx.importer",
               "save_onnx": "graphc.onnx.export", "to_onnx": "graphc.onnx.export"}


def __getattr__(name: str):
    """The ONNX functions (imported on first use), or an op registered after `import graphc`
    (the eager names above cover the rest)."""
    if name in _ONNX_NAMES or name == "onnx":
        import importlib

        module = importlib.import_module(_ONNX_NAMES.get(name, "graphc.onnx"))
        value = module if name == "onnx" else getattr(module, name)
        globals()[name] = value
        return value
    function = _op_api.op_function(name) if not name.startswith("__") else None
    if function is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return function


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_op_api.op_names()) | set(_ONNX_NAMES))
