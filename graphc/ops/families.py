"""Every op family, imported for its records: importing this module fills the registry.

Input: nothing. Output: the registry (graphc/ops/registry.py) holding every OpDef. `import graphc`
imports it first; the family modules themselves import only the registry and the op API, so the
registry can be read without importing any family.
"""
from graphc.ops import (  # noqa: F401
    activations,
    bitwise,
    conv,
    elementwise,
    fused,
    indexing,
    linalg,
    losses,
    modulo,
    norm,
    pool,
    reduce,
    shape,
    source,
    trig,
)
