"""graphc: a compiler for training neural networks on CPUs.

Input: models written with the DSL (`GraphBuilder`, `gc.relu`, ...) or ONNX files.
Output: graphs that can be interpreted, differentiated, printed/parsed and compiled to native code.
"""
from . import ops  # noqa: F401  (registers every op)
from .builder import GraphBuilder, Tensor  # noqa: F401
from .errors import (  # noqa: F401
                     CompileError,
                     FeedError,
                     GradientCheckError,
                     GradientError,
                     GraphcError,
                     ParseError,
                     ShapeError,
                     VerifyError,
)
from .frontend import layers  # noqa: F401
from .frontend.dsl import (  # noqa: F401
                     add,
                     broadcast_to,
                     cast,
                     constant,
                     div,
                     equal,
                     exp,
                     greater,
                     greater_equal,
                     less,
                     less_equal,
                     log,
                     log_softmax,
                     matmul,
                     max,
                     maximum,
                     mean,
                     minimum,
                     mse,
                     mul,
                     neg,
                     not_equal,
                     pow,
                     relu,
                     reshape,
                     sigmoid,
                     softmax,
                     softmax_cross_entropy,
                     sqrt,
                     stop_gradient,
                     sub,
                     sum,
                     swapaxes,
                     tanh,
                     transpose,
                     where,
)
from .frontend.nn import (  # noqa: F401
                     abs,
                     arg_max,
                     arg_min,
                     auto_pads,
                     avg_pool2d,
                     ceil,
                     clip,
                     col2im,
                     concat,
                     conv2d,
                     elu,
                     erf,
                     expand,
                     flatten,
                     floor,
                     gather,
                     gelu,
                     global_avg_pool,
                     global_max_pool,
                     hard_sigmoid,
                     hard_swish,
                     is_inf,
                     is_nan,
                     leaky_relu,
                     logical_and,
                     logical_not,
                     logical_or,
                     logical_xor,
                     max_pool2d,
                     mean_of,
                     pad,
                     prelu,
                     reciprocal,
                     reduce_l2,
                     reduce_log_sum,
                     reduce_log_sum_exp,
                     reduce_min,
                     reduce_sum_square,
                     round,
                     selu,
                     sign,
                     slice,
                     softplus,
                     split,
                     squeeze,
                     unslice,
                     unsqueeze,
                     windows,
)
from .frontend.onnx_import import load_onnx  # noqa: F401
from .interpret import interpret  # noqa: F401
from .ir import Graph, GraphInput, Node, Value  # noqa: F401
from .losses import with_loss  # noqa: F401
from .onnx_export import save_onnx  # noqa: F401
from .pipeline import check_grads, compile, compile_train_step, compile_value_and_grad, grad, optim  # noqa: F401
from .printer import parse, print_graph  # noqa: F401
from .types import TensorType  # noqa: F401
from .verify import verify  # noqa: F401
