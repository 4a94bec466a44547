"""ONNX's own node conformance tests (shipped inside the onnx package) run on graphc.

Input: `onnx.backend.test.BackendTest` over `graphc.onnx_backend`, restricted to the cases whose
op under test (the one op type of the case's model; for a function's `_expanded` case, that of
the case it expands) is an ONNX op type graphc supports (`ALLOWED`). Output: one pytest case per
ONNX test case; every case of an allow-listed op type must pass. Every case is imported and
compiled to native code (`gc.compile`, shared between identical graphs); none falls back to the
interpreter.

`EXCLUDED` lists the only cases of allow-listed op types that are left out, with the reason.
`PARTIAL` op types are not allow-listed because some of their cases use value types graphc does
not have; their tensor cases run here too, and the rest must be refused up front with one clear
GraphcError (test_partial_op_types_refuse_the_rest).
"""
from __future__ import annotations

import re
import warnings

import onnx.backend.test
import pytest
from onnx.backend.test.loader import load_node_model_tests

from graphc.errors import GraphcError
from graphc.onnx import backend

ALLOWED = {
    "Abs", "Acos", "Acosh", "Adagrad", "Adam", "Add", "AffineGrid", "And", "ArgMax", "ArgMin",
    "Asin", "Asinh", "Atan", "Atanh", "Attention", "AveragePool", "BatchNormalization", "BitShift",
    "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "Ceil", "Celu", "CenterCropPad", "Clip",
    "Col2Im", "Compress", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos",
    "Cosh", "CumProd", "CumSum", "DepthToSpace", "Det", "Div", "Dropout", "Einsum", "Elu", "Erf",
    "Exp", "Expand", "EyeLike", "Flatten", "Floor", "GRU", "Gather", "GatherElements", "GatherND",
    "Gelu", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Greater", "GreaterOrEqual",
    "GridSample", "GroupNormalization", "HardSigmoid", "HardSwish", "Hardmax",
    "InstanceNormalization", "LRN", "LSTM", "LayerNormalization", "LeakyRelu", "Less",
    "LessOrEqual", "Log", "LogSoftmax", "LpNormalization", "LpPool", "MatMul", "Max", "MaxPool",
    "Mean", "Min", "Mish", "Mod", "Momentum", "Mul", "Neg", "NegativeLogLikelihoodLoss", "Not",
    "OneHot", "Or", "PRelu", "Pad", "Pow", "RMSNormalization", "RNN", "Range", "Reciprocal",
    "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
    "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Resize",
    "ReverseSequence", "RotaryEmbedding", "Round", "Scatter", "ScatterElements", "ScatterND",
    "Selu", "Shape", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Size", "Slice", "Softmax",
    "SoftmaxCrossEntropyLoss", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze",
    "Sub", "Sum", "SwiGLU", "Swish", "Tan", "Tanh", "ThresholdedRelu", "Tile", "TopK", "Transpose",
    "Trilu", "Unsqueeze", "Upsample", "Where", "Xor",
}
# op type -> why it is not allow-listed although graphc imports it
PARTIAL = {
    "Equal": "test_equal_string*: string tensors, and graphc has no string dtype",
    "Identity": "test_identity_sequence / test_identity_opt: an ONNX sequence and an optional, "
                "and graphc values are tensors",
}

# case-name pattern -> why it is left out
EXCLUDED = {
    r"^test_training_dropout(_default)?(_mask)?_cpu$": "training-mode Dropout with ratio > 0: "
    "the expected output is NumPy's own random mask, which graphc's counter-based RNG does not "
    "reproduce (the zero-ratio training cases run)",
    r"^test_range_.*_expanded_cpu$": "Range's expanded form is a Loop, and graphc graphs have no "
    "control flow (the Range cases themselves run)",
    r"^test_affine_grid_.*_expanded_cpu$": "AffineGrid's expanded form uses If, and graphc graphs "
    "have no control flow (the AffineGrid cases themselves run)",
}

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the case generators warn about NumPy casts
    NODE_CASES = {case.name: case for case in load_node_model_tests()}


def op_under_test(name: str) -> str | None:
    """The op type a node test case is about (an `_expanded` case: that of its base case)."""
    base = NODE_CASES.get(re.sub(r"_expanded(_ver\d+)?$", "", name))
    return base.model.graph.node[0].op_type if base is not None else None


def _compatible(name: str) -> bool:
    return backend.is_compatible(NODE_CASES[name].model)


SELECTED = sorted(name for name in NODE_CASES if op_under_test(name) in ALLOWED or (
    op_under_test(name) in PARTIAL and _compatible(name)))
REFUSED = sorted(name for name in NODE_CASES
                 if op_under_test(name) in PARTIAL and not _compatible(name))

backend_test = onnx.backend.test.BackendTest(backend, __name__)
backend_test.include(r"^(" + "|".join(map(re.escape, SELECTED)) + r")_cpu$")
for pattern in EXCLUDED:
    backend_test.exclude(pattern)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    cases = backend_test.test_cases
# BackendTest marks every case outside the allow-list as skipped; drop those instead, so the
# run lists only the cases graphc is held to
for case_class in cases.values():
    for name in [n for n in vars(case_class) if n.startswith("test_")]:
        if getattr(getattr(case_class, name), "__unittest_skip__", False):
            delattr(case_class, name)
globals().update(cases)


@pytest.mark.parametrize("name", REFUSED)
def test_partial_op_types_refuse_the_rest(name):
    """The cases of PARTIAL op types graphc cannot type are refused by prepare with one
    GraphcError naming each offending graph input/output (never a crash or a wrong answer)."""
    model = NODE_CASES[name].model
    with pytest.raises(GraphcError, match="types graphc does not support") as err:
        backend.prepare(model)
    for value in model.graph.input:
        assert repr(value.name) in str(err.value)


def test_selection_is_by_op_type():
    """No case of another op type sneaks in through a shared name prefix (SplitToSequence is
    not Split), and every allow-listed op type has cases."""
    assert not [n for n in SELECTED if n.startswith("test_split_to_sequence")]
    assert {op_under_test(n) for n in SELECTED} == ALLOWED | set(PARTIAL)
    assert len(REFUSED) == 4
