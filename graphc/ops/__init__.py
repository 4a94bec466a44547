"""The op registry and every op graphc knows (one OpDef per op)."""
from . import activations, conv, elementwise, fused, linalg, nn, norm, pool, reduce, shape, source  # noqa: F401
from .registry import NOT_DIFFERENTIABLE, OpDef, all_ops, get_op, register  # noqa: F401
