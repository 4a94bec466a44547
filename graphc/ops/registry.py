"""The op registry: one `OpDef` record holds every fact about an op, its names included.

Input: `register(OpDef(...))` calls from the op modules (`unregister` undoes one, for tests).
Output: `get_op(name)` / `all_ops()` for the drivers (builder, verifier, interpreter, autodiff,
decomposition, kernel emitter, the op API, ONNX import and export), which look facts up here
instead of branching on op names, and `api_name(op)`, the op's name in the op API.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphc.errors import GraphcError

KINDS = ("elementwise", "reduction", "matmul", "movement", "source", "composite", "fused")


class _NotDifferentiable:
    """Marker: the op has no gradient (its outputs are not functions of float inputs)."""

    def __repr__(self) -> str:
        return "NOT_DIFFERENTIABLE"


NOT_DIFFERENTIABLE = _NotDifferentiable()
REQUIRED = object()


@dataclass(frozen=True)
class OpDef:
    """Everything graphc knows about one op.

    - `infer(types, attrs) -> list[TensorType]`: the shape/dtype rule; raises ShapeError.
    - `reference(*arrays, **attrs) -> array | tuple`: NumPy semantics, used by the interpreter.
    - `bprop(inputs, outputs, grads, **attrs) -> list[Tensor | None]`: the gradient written with
      graph ops (DSL tensors), or NOT_DIFFERENTIABLE.
    - `scalar(e, *args, **attrs)`: elementwise body over a scalar emitter `e` (NumPy or LLVM).
    - `reducer = (combine, identity)` and `finalize(e, acc, count)` for reductions.
    - `view(in_type, out_type, **attrs) -> strides`: for movement ops, the input element stride
      of each output dimension (a strided copy implements the op).
    - `index_map(at, e, idx, in_types, out_type, **attrs) -> scalar`: for movement ops that are
      not a strided view (pad, slice, concat, gather, im2col): the output element at multi-index
      `idx` (i64 scalars), built with the scalar emitter `e` and `at(k, index)`, which reads
      input k at an index. Indices passed to `at` must be in bounds (clamp, then select).
    - `decompose(*inputs, **attrs)`: composite ops rewritten into primitives after autodiff.
    - `check_inputs(types, arrays, **attrs)`: run-time validation of data the shape rule cannot see
      (e.g. class labels in range); `arrays[i]` is None where the value is not known (a compiled
      run only knows its feeds); raises GraphcError.
    - `dsl`: the op's hand-written function in the op API (`gc.sum`, `F.sum`), for ops whose
      function converts its arguments (axis -> axes, a default perm, reshape's -1); its
      `__name__` is the op's public name. Without one, graphc.ops.api derives the function from
      `arity` and `attrs` under the op's own name. `public=False` keeps an internal op
      (fused, iota) out of the op API.
    - `onnx`: the ONNX op type when the op maps one-to-one onto it (same operands, same attribute
      names and meanings): the exporter writes it and the importer reads it from this field.
    """

    name: str
    doc: str
    kind: str
    infer: Callable[..., list]
    reference: Callable[..., Any]
    bprop: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)
    scalar: Callable[..., Any] | None = None
    reducer: tuple[str, float] | None = None
    finalize: Callable[..., Any] | None = None
    decompose: Callable[..., Any] | None = None
    view: Callable[..., tuple[int, ...]] | None = None
    index_map: Callable[..., Any] | None = None
    check_inputs: Callable[..., None] | None = None
    arity: int | None = 1
    dsl: Callable[..., Any] | None = None
    public: bool = True
    onnx: str | None = None

    @property
    def differentiable(self) -> bool:
        return self.bprop is not NOT_DIFFERENTIABLE and self.bprop is not None


_REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add an op to the registry, checking the record is complete for its kind."""
    if op.name in _REGISTRY:
        raise GraphcError(f"op {op.name!r} registered twice")
    if op.kind not in KINDS:
        raise GraphcError(f"op {op.name!r}: unknown kind {op.kind!r}")
    if op.kind == "elementwise" and op.scalar is None:
        raise GraphcError(f"elementwise op {op.name!r} needs a scalar body")
    if op.kind == "reduction" and op.reducer is None:
        raise GraphcError(f"reduction op {op.name!r} needs a reducer")
    if op.kind == "movement" and op.view is None and op.index_map is None:
        raise GraphcError(f"movement op {op.name!r} needs a view or an index_map")
    if op.kind == "composite" and op.decompose is None:
        raise GraphcError(f"composite op {op.name!r} needs a decomposition")
    _REGISTRY[op.name] = op
    return op


def unregister(name: str) -> None:
    """Remove an op (a test's temporary op), so that no later lookup sees it."""
    if _REGISTRY.pop(name, None) is None:
        raise GraphcError(f"unknown op {name!r}")


def api_name(op: OpDef) -> str | None:
    """The op's name in the op API (`gc.<name>`), or None for an internal op."""
    if not op.public:
        return None
    return op.dsl.__name__ if op.dsl is not None else op.name


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise GraphcError(f"unknown op {name!r}") from None


def all_ops() -> dict[str, OpDef]:
    return dict(_REGISTRY)


def normalize_attrs(op: OpDef, attrs: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults, reject unknown or missing attributes, turn lists into tuples."""
    unknown = set(attrs) - set(op.attrs)
    if unknown:
        raise GraphcError(f"{op.name}: unknown attribute(s) {sorted(unknown)}; "
                          f"expected {sorted(op.attrs)}")
    out = {}
    for key, default in op.attrs.items():
        value = attrs.get(key, default)
        if value is REQUIRED:
            raise GraphcError(f"{op.name}: missing attribute {key!r}")
        out[key] = _freeze(value)
    return out


def _freeze(value: Any) -> Any:
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) >= 1:  # a NumPy array of ints
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value
